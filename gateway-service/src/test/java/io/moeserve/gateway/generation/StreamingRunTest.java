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
import io.moeserve.proto.router.v1.FinishReason;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.proto.router.v1.Usage;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.smallrye.mutiny.helpers.test.AssertSubscriber;
import jakarta.enterprise.inject.Vetoed;
import jakarta.inject.Inject;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
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
        router.calls.get(0).onError(Status.INTERNAL.withDescription("broken").asRuntimeException());

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

    @Test
    void aRouterLostBeforeTheFirstTokenIsRetriedOnAnotherInvisibly() {
        HandDrivenRouter router = new HandDrivenRouter();
        RestMulti<byte[]> response = GenerationRun.respond(plan(1), model, router, metrics);
        AssertSubscriber<byte[]> client = response.subscribe().withSubscriber(AssertSubscriber.create(Long.MAX_VALUE));
        router.calls.get(0).onError(Status.UNAVAILABLE.withDescription("Connection refused").asRuntimeException());
        assertEquals(2, router.calls.size(), "started again");
        assertEquals(router.requests.get(0), router.requests.get(1), "the same request, nothing resumed");
        assertTrue(client.getItems().isEmpty());

        router.calls.get(1).onNext(tokens("Hello"));
        router.calls.get(1).onNext(finish(" there", 2));
        assertEquals(200, response.getStatus());
        assertEquals("Hello there", content(client));
        client.assertCompleted();
    }

    @Test
    void aRouterLostMidStreamIsResumedOnAnotherWithTheTokensSoFar() {
        HandDrivenRouter router = new HandDrivenRouter();
        AssertSubscriber<byte[]> client = GenerationRun.respond(plan(1), model, router, metrics).subscribe()
                .withSubscriber(AssertSubscriber.create(Long.MAX_VALUE));
        GenerateResponse hello = tokens("Hello");
        router.calls.get(0).onNext(hello);
        router.calls.get(0).onNext(tokens(" wor"));
        router.calls.get(0).onError(Status.UNAVAILABLE.withDescription("io exception").asRuntimeException());

        assertEquals(2, router.calls.size());
        GenerateRequest first = router.requests.get(0);
        GenerateRequest resumed = router.requests.get(1);
        List<Integer> prompt = new ArrayList<>(first.getPromptTokenIdsList());
        prompt.addAll(hello.getTokenIdsList());
        prompt.addAll(tokens(" wor").getTokenIdsList());
        int k = prompt.size() - first.getPromptTokenIdsCount();
        assertEquals(prompt, resumed.getPromptTokenIdsList(), "the prompt, then every token received");
        assertEquals(k, resumed.getResumedOutputTokens());
        assertEquals(first.getMaxNewTokens() - k, resumed.getMaxNewTokens());
        assertEquals(first.getSampling(), resumed.getSampling(), "same sampling, same seed: the router advances it");

        router.calls.get(1).onNext(finish("ld", 1));
        List<String> chunks = texts(client);
        assertTrue(chunks.stream().noneMatch(c -> c.contains("\"error\"")), chunks.toString());
        assertEquals(1, chunks.stream().filter(c -> c.contains("\"role\"")).count(), "one role chunk");
        assertEquals("Hello world", content(client));
        client.assertCompleted();
    }

    @Test
    void withoutMigrationARouterLostMidStreamIsAnErrorEvent() {
        HandDrivenRouter router = new HandDrivenRouter();
        AssertSubscriber<byte[]> client = GenerationRun.respond(plan(1, 3, false), model, router, metrics).subscribe()
                .withSubscriber(AssertSubscriber.create(Long.MAX_VALUE));
        router.calls.get(0).onNext(tokens("Hello"));
        router.calls.get(0).onError(Status.UNAVAILABLE.withDescription("gone").asRuntimeException());
        assertEquals(1, router.calls.size());
        List<String> chunks = texts(client);
        assertTrue(chunks.get(chunks.size() - 2).startsWith("data: {\"error\":{"), chunks.toString());
        client.assertCompleted();
    }

    @Test
    void attemptsAreBoundedAndAWrongRequestIsNotRetried() {
        HandDrivenRouter router = new HandDrivenRouter();
        AssertSubscriber<byte[]> client = GenerationRun.respond(plan(1), model, router, metrics).subscribe()
                .withSubscriber(AssertSubscriber.create(Long.MAX_VALUE));
        for (int i = 0; i < 3; i++) router.calls.get(i).onError(Status.UNAVAILABLE.withDescription("down").asRuntimeException());
        assertEquals(3, router.calls.size(), "moe.gateway.router.max-attempts calls, no more");
        assertEquals(503, assertInstanceOf(OpenAiException.class, client.getFailure()).status());

        HandDrivenRouter other = new HandDrivenRouter();
        AssertSubscriber<byte[]> second = GenerationRun.respond(plan(1), model, other, metrics).subscribe()
                .withSubscriber(AssertSubscriber.create(Long.MAX_VALUE));
        other.calls.get(0).onError(Status.INVALID_ARGUMENT.withDescription("bad").asRuntimeException());
        assertEquals(1, other.calls.size());
        assertEquals(400, assertInstanceOf(OpenAiException.class, second.getFailure()).status());
    }

    private GenerationPlan plan(int n) {
        return plan(n, 3, true);
    }

    private GenerationPlan plan(int n, int attempts, boolean migration) {
        GenerationOptions options = ChatCompletionRequest.parse(("{\"model\": \"" + model.id() + "\", \"n\": " + n
                + ", \"stream\": true, \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}")
                .getBytes(StandardCharsets.UTF_8)).options();
        return new GenerationPlan(new CompletionIdentity("chatcmpl-test", 1, model.id(),
                GenerationOptions.Endpoint.CHAT), List.of(model.tokenizer().encode("Hi", false)), new int[] {100},
                options, new int[0], Duration.ofSeconds(20), null, attempts, migration);
    }

    private GenerateResponse tokens(String text) {
        GenerateResponse.Builder b = GenerateResponse.newBuilder();
        for (int id : model.tokenizer().encode(text, false)) b.addTokenIds(id);
        return b.build();
    }

    private GenerateResponse finish(String text, int completionTokens) {
        return tokens(text).toBuilder().setFinishReason(FinishReason.FINISH_REASON_LENGTH)
                .setUsage(Usage.newBuilder().setCompletionTokens(completionTokens)).build();
    }

    /** The choice's content, every delta joined. */
    private static String content(AssertSubscriber<byte[]> client) {
        StringBuilder out = new StringBuilder();
        Matcher m = Pattern.compile("\"content\":\"((?:[^\"\\\\]|\\\\.)*)\"").matcher(String.join("", texts(client)));
        while (m.find()) out.append(m.group(1));
        return out.toString();
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
        final List<GenerateRequest> requests = new ArrayList<>();

        @Override
        public boolean generate(GenerateRequest request, Duration timeout, GenerationCall call, Set<String> tried) {
            CallStream stream = new CallStream();
            call.beforeStart(stream);
            calls.add(call);
            streams.add(stream);
            requests.add(request);
            tried.add("router-" + calls.size());
            return true;
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
