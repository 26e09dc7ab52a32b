package io.moeserve.gateway.generation;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.grpc.Status;
import io.moeserve.gateway.FakeRouterResource;
import io.moeserve.gateway.GatewayMetrics;
import io.moeserve.gateway.ServedModel;
import io.moeserve.gateway.openai.ChatCompletionRequest;
import io.moeserve.gateway.openai.CompletionIdentity;
import io.moeserve.gateway.openai.GenerationOptions;
import io.moeserve.proto.router.v1.FinishReason;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.proto.router.v1.Usage;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.smallrye.mutiny.helpers.test.AssertSubscriber;
import jakarta.inject.Inject;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The whole-body run when its router goes away mid-generation: the choice resumes on another router and the body
 * holds the text once, with usage counting every token once. The router is StreamingRunTest's hand-driven one.
 */
@QuarkusTest
@WithTestResource(FakeRouterResource.class)
class NonStreamingRunTest {

    @Inject
    ServedModel model;

    @Inject
    GatewayMetrics metrics;

    @Test
    void aRouterLostMidGenerationIsResumedAndTheBodyHoldsTheWholeText() throws Exception {
        StreamingRunTest.HandDrivenRouter router = new StreamingRunTest.HandDrivenRouter();
        AssertSubscriber<byte[]> client = GenerationRun.respond(plan(), model, router, metrics).subscribe()
                .withSubscriber(AssertSubscriber.create(Long.MAX_VALUE));
        GenerateResponse hello = tokens("Hello");
        router.calls.get(0).onNext(hello);
        router.calls.get(0).onError(Status.UNAVAILABLE.withDescription("Connection closed").asRuntimeException());

        assertEquals(2, router.calls.size(), "resumed on another router");
        GenerateRequest resumed = router.requests.get(1);
        int k = hello.getTokenIdsCount();
        assertEquals(k, resumed.getResumedOutputTokens());
        assertEquals(router.requests.get(0).getPromptTokenIdsCount() + k, resumed.getPromptTokenIdsCount());

        GenerateResponse rest = tokens(" world").toBuilder().setFinishReason(FinishReason.FINISH_REASON_LENGTH)
                .setUsage(Usage.newBuilder().setCompletionTokens(tokens(" world").getTokenIdsCount())).build();
        router.calls.get(1).onNext(rest);
        client.awaitCompletion(Duration.ofSeconds(10));
        JsonNode body = new ObjectMapper().readTree(new String(client.getItems().getFirst(), StandardCharsets.UTF_8));
        assertEquals("Hello world", body.at("/choices/0/message/content").asText());
        assertEquals("length", body.at("/choices/0/finish_reason").asText());
        assertEquals(k + rest.getTokenIdsCount(), body.at("/usage/completion_tokens").asInt(),
                "the tokens of both routers, each once");
    }

    private GenerationPlan plan() {
        GenerationOptions options = ChatCompletionRequest.parse(("{\"model\": \"" + model.id() + "\", \"messages\": "
                + "[{\"role\": \"user\", \"content\": \"Hi\"}]}").getBytes(StandardCharsets.UTF_8)).options();
        return new GenerationPlan(new CompletionIdentity("chatcmpl-test", 1, model.id(), GenerationOptions.Endpoint.CHAT),
                List.of(model.tokenizer().encode("Hi", false)), new int[] {100}, options, new int[0], Duration.ofSeconds(20),
                null, 3, true);
    }

    private GenerateResponse tokens(String text) {
        GenerateResponse.Builder b = GenerateResponse.newBuilder();
        for (int id : model.tokenizer().encode(text, false)) b.addTokenIds(id);
        return b.build();
    }
}
