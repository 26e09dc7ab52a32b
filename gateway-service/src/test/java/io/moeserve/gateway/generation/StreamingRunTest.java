package io.moeserve.gateway.generation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.moeserve.gateway.FakeRouterResource;
import io.moeserve.gateway.GatewayMetrics;
import io.moeserve.gateway.ServedModel;
import io.moeserve.gateway.openai.ChatCompletionRequest;
import io.moeserve.gateway.openai.CompletionIdentity;
import io.moeserve.gateway.openai.GenerationOptions;
import io.moeserve.gateway.openai.OpenAiException;
import io.moeserve.gateway.router.GenerationCall;
import io.moeserve.gateway.router.RouterClient;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.proto.router.v1.GenerateResponse;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.smallrye.mutiny.helpers.test.AssertSubscriber;
import jakarta.enterprise.inject.Vetoed;
import jakarta.inject.Inject;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.jboss.resteasy.reactive.RestMulti;
import org.junit.jupiter.api.Test;

/**
 * The streaming run against router calls driven by hand, message by message, where the HTTP tests cannot look:
 * when the response commits, and which router messages are asked for while the client reads slowly. The served
 * model (its tokenizer) and the metrics are the application's; the router is {@link HandDrivenRouter}.
 */
@QuarkusTest
@WithTestResource(FakeRouterResource.class)
class StreamingRunTest {

    @Inject
    ServedModel model;

    @Inject
    GatewayMetrics metrics;

    @Test
    void theResponseCommitsOnlyWhenEveryChoiceHasBegun() {
        HandDrivenRouter router = new HandDrivenRouter();
        RestMulti<byte[]> response = GenerationRun.respond(plan(2), model, router, metrics);
        AssertSubscriber<byte[]> client = response.subscribe().withSubscriber(AssertSubscriber.create(Long.MAX_VALUE));
        assertEquals(2, router.calls.size());

        router.calls.get(0).onNext(tokens("Hello"));
        assertTrue(client.getItems().isEmpty(), "nothing before every choice has begun");
        client.assertNotTerminated();

        router.calls.get(1).onNext(tokens("Hi"));
        List<String> chunks = texts(client);
        assertEquals(4, chunks.size(), chunks.toString());
        assertTrue(chunks.get(0).contains("\"index\":0,\"delta\":{\"role\":\"assistant\""), chunks.get(0));
        assertTrue(chunks.get(2).contains("\"index\":1,\"delta\":{\"role\":\"assistant\""), chunks.get(2));
        assertEquals(200, response.getStatus());
        client.cancel();
    }

    @Test
    void aSaturatedRouterBeforeTheCommitIsA429AndCancelsTheOtherChoices() {
        HandDrivenRouter router = new HandDrivenRouter();
        AssertSubscriber<byte[]> client = GenerationRun.respond(plan(2), model, router, metrics).subscribe()
                .withSubscriber(AssertSubscriber.create(Long.MAX_VALUE));
        router.calls.get(0).onNext(tokens("Hello"));
        Metadata trailers = new Metadata();
        trailers.put(Metadata.Key.of("retry-after-ms", Metadata.ASCII_STRING_MARSHALLER), "2500");
        router.calls.get(1).onError(Status.RESOURCE_EXHAUSTED.withDescription("queue full").asRuntimeException(trailers));

        OpenAiException e = assertInstanceOf(OpenAiException.class, client.getFailure());
        assertEquals(429, e.status());
        assertEquals(3, e.retryAfterSeconds().getAsLong());
        assertTrue(client.getItems().isEmpty());
        assertTrue(router.streams.get(0).cancelled, "the choice that had begun is cancelled");
    }

    @Test
    void anErrorAfterTheCommitIsAnErrorEventThenDone() {
        HandDrivenRouter router = new HandDrivenRouter();
        AssertSubscriber<byte[]> client = GenerationRun.respond(plan(1), model, router, metrics).subscribe()
                .withSubscriber(AssertSubscriber.create(Long.MAX_VALUE));
        router.calls.get(0).onNext(tokens("Hello"));
        router.calls.get(0).onError(Status.UNAVAILABLE.withDescription("gone").asRuntimeException());

        List<String> chunks = texts(client);
        assertTrue(chunks.get(chunks.size() - 2).startsWith("data: {\"error\":{"), chunks.toString());
        assertTrue(chunks.get(chunks.size() - 2).endsWith("\n\n"), chunks.toString());
        assertEquals("data: [DONE]\n\n", chunks.get(chunks.size() - 1));
        client.assertCompleted();
    }

    @Test
    void theNextRouterMessageIsAskedForOnlyWhileTheClientHasDemand() {
        HandDrivenRouter router = new HandDrivenRouter();
        AssertSubscriber<byte[]> client = GenerationRun.respond(plan(1), model, router, metrics).subscribe()
                .withSubscriber(AssertSubscriber.create(0));
        GenerationCall call = router.calls.get(0);
        CallStream stream = router.streams.get(0);
        assertEquals(1, stream.requested, "a call starts with one message asked for");

        // The first message commits the response; the SSE subscription that follows resumes the choice.
        call.onNext(tokens("Hello"));
        int asked = stream.requested;
        call.onNext(tokens(" there"));
        assertEquals(asked, stream.requested, "without demand the router is not asked for more");

        client.request(1);
        assertEquals(asked + 1, stream.requested, "the client's request resumes the router stream");

        client.request(100);
        call.onNext(tokens(" again"));
        assertEquals(asked + 2, stream.requested, "with demand each message handled asks for the next");
        call.onNext(tokens(" and"));
        assertEquals(asked + 3, stream.requested);

        client.cancel();
        assertTrue(stream.cancelled, "a client that goes away cancels the router call");
    }

    private GenerationPlan plan(int n) {
        GenerationOptions options = ChatCompletionRequest.parse(("{\"model\": \"" + model.id() + "\", \"n\": " + n
                + ", \"stream\": true, \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}")
                .getBytes(StandardCharsets.UTF_8)).options();
        return new GenerationPlan(new CompletionIdentity("chatcmpl-test", 1, model.id(),
                GenerationOptions.Endpoint.CHAT), List.of(model.tokenizer().encode("Hi", false)), new int[] {100},
                options, new int[0], Duration.ofSeconds(20), null);
    }

    private GenerateResponse tokens(String text) {
        GenerateResponse.Builder b = GenerateResponse.newBuilder();
        for (int id : model.tokenizer().encode(text, false)) b.addTokenIds(id);
        return b.build();
    }

    private static List<String> texts(AssertSubscriber<byte[]> client) {
        List<String> out = new ArrayList<>();
        for (byte[] chunk : client.getItems()) out.add(new String(chunk, StandardCharsets.UTF_8));
        return out;
    }

    /** A router whose calls the test answers itself: it only records them. Vetoed: not a bean of the app. */
    @Vetoed
    static final class HandDrivenRouter extends RouterClient {
        final List<GenerationCall> calls = new ArrayList<>();
        final List<CallStream> streams = new ArrayList<>();

        @Override
        public void generate(GenerateRequest request, Duration timeout, GenerationCall call) {
            CallStream stream = new CallStream();
            call.beforeStart(stream);
            calls.add(call);
            streams.add(stream);
        }
    }

    /** The client side of one gRPC call, as GenerationCall drives it: how many messages it asked for. */
    static final class CallStream extends ClientCallStreamObserver<GenerateRequest> {
        int requested;
        boolean cancelled;

        @Override
        public void disableAutoRequestWithInitial(int request) {
            requested += request;
        }

        @Override
        public void request(int count) {
            requested += count;
        }

        @Override
        public void cancel(String message, Throwable cause) {
            cancelled = true;
        }

        @Override
        public boolean isReady() {
            return true;
        }

        @Override
        public void setOnReadyHandler(Runnable onReadyHandler) {}

        @Override
        public void disableAutoInboundFlowControl() {}

        @Override
        public void setMessageCompression(boolean enable) {}

        @Override
        public void onNext(GenerateRequest value) {}

        @Override
        public void onError(Throwable t) {}

        @Override
        public void onCompleted() {}
    }
}
