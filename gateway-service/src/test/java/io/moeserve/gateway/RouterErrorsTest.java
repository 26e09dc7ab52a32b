package io.moeserve.gateway;

import static io.moeserve.gateway.BadRequestsTest.assertError;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * The router's gRPC statuses as HTTP statuses and OpenAI errors, before and after a stream has started; and
 * cancellation: a client that goes away cancels the router call.
 */
@QuarkusTest
@WithTestResource(FakeRouterResource.class)
class RouterErrorsTest {

    @InjectFakeRouter
    FakeRouter router;

    static final String PATH = ChatCompletionsTest.PATH;

    static String failing(String code, String more) {
        return ChatCompletionsTest.chat(ChatCompletionsTest.script("{\"error\":{\"code\":\"" + code
                + "\",\"message\":\"scripted " + code + "\"" + more + "}}"), "");
    }

    static String streaming(String body) {
        return body.substring(0, body.length() - 1) + ",\"stream\":true}";
    }

    @Test
    void eachRouterStatusBecomesItsHttpStatus() {
        Object[][] cases = {
                {"INVALID_ARGUMENT", 400, null},
                {"OUT_OF_RANGE", 400, "context_length_exceeded"},
                {"NOT_FOUND", 404, "model_not_found"},
                {"RESOURCE_EXHAUSTED", 429, "rate_limit_exceeded"},
                {"UNAVAILABLE", 503, "service_unavailable"},
                {"DEADLINE_EXCEEDED", 504, "timeout"},
                {"INTERNAL", 500, null},
                {"PERMISSION_DENIED", 500, null},
        };
        for (Object[] c : cases) {
            String body = failing((String) c[0], "");
            for (String b : List.of(body, streaming(body))) {
                HttpResponse<byte[]> r = Http.post(PATH, b);
                JsonNode e = assertError(r, (int) c[1], r.statusCode() == 404 ? "model" : c[0].equals("OUT_OF_RANGE")
                        ? "messages" : null, (String) c[2]);
                assertTrue(e.get("message").asText().contains("scripted " + c[0]), e.toString());
            }
        }
    }

    @Test
    void aSaturatedRouterIs429WithRetryAfterFromTheTrailer() {
        String body = failing("RESOURCE_EXHAUSTED", ",\"retry_after_ms\":2500");
        for (String b : List.of(body, streaming(body))) {
            HttpResponse<byte[]> r = Http.post(PATH, b);
            assertError(r, 429, null, "rate_limit_exceeded");
            assertEquals("3", r.headers().firstValue("Retry-After").orElse(""), "2.5 s rounded up");
        }
        HttpResponse<byte[]> plain = Http.post(PATH, failing("RESOURCE_EXHAUSTED", ""));
        assertEquals("1", plain.headers().firstValue("Retry-After").orElse(""), "1 s when the router says nothing");
    }

    /** Once the stream has started: a final data: {"error": ...} event, then [DONE]; never a silent cut. */
    @Test
    void anErrorAfterTheStreamStartedIsAFinalErrorEventThenDone() {
        String script = ChatCompletionsTest.script("{\"reply\":\"abcdef\",\"tokenize\":\"bytes\","
                + "\"error\":{\"code\":\"UNAVAILABLE\",\"message\":\"expert pod lost\",\"after\":3}}");
        String body = streaming(ChatCompletionsTest.chat(script, ""));
        HttpResponse<byte[]> r = Http.post(PATH, body);
        List<String> events = Http.sseData(r);
        assertEquals("abc", Http.streamedText(events, 0));
        JsonNode last = Http.json(events.getLast());
        assertEquals(1, last.size(), "only the error field: " + last);
        assertEquals("server_error", last.at("/error/type").asText());
        assertEquals("service_unavailable", last.at("/error/code").asText());
        assertTrue(last.at("/error/message").asText().contains("expert pod lost"));
        assertTrue(Http.text(r).endsWith("}}\n\ndata: [DONE]\n\n"));

        // Not streaming, the same failure is the response's status.
        assertError(Http.post(PATH, body.replace(",\"stream\":true", "")), 503, null, "service_unavailable");
    }

    @Test
    void aStreamThatEndsWithoutAFinishReasonIsAnErrorNotATruncation() {
        String body = ChatCompletionsTest.chat(ChatCompletionsTest.script("{\"reply\":\"cut\",\"finish\":\"none\"}"), "");
        assertError(Http.post(PATH, body), 500, null, null);
        List<String> events = Http.sseData(Http.post(PATH, streaming(body)));
        assertEquals("server_error", Http.json(events.getLast()).at("/error/type").asText());
    }

    @Test
    void outputTheTokenizerCannotDecodeIsAServerErrorNotACrash() {
        // 4000000000 is a valid uint32 on the wire, and no token of any tokenizer.
        String body = ChatCompletionsTest.chat(ChatCompletionsTest.script("{\"ids\":[72,4000000000,73]}"), "");
        assertError(Http.post(PATH, body), 500, null, null);
        String late = ChatCompletionsTest.chat(ChatCompletionsTest.script("{\"ids\":[72,73,4000000000]}"), "");
        List<String> events = Http.sseData(Http.post(PATH, streaming(late)));
        assertEquals("server_error", Http.json(events.getLast()).at("/error/type").asText());
        assertEquals(200, Http.post(PATH, ChatCompletionsTest.chat("still fine?", "")).statusCode());
    }

    @Test
    void aClientThatDisconnectsMidStreamCancelsTheRouterCall() throws Exception {
        String marker = "leave-mid-stream";
        String body = streaming(ChatCompletionsTest.chat(ChatCompletionsTest.script(
                "{\"reply\":\"x\",\"repeat\":500,\"tokenize\":\"bytes\",\"delay_ms\":20,\"m\":\"" + marker + "\"}"), ""));
        String seen = Http.rawUntil(PATH, body, "\"content\":\"x\"", Duration.ofSeconds(20));
        assertTrue(seen.contains("\"content\":\"x\""), seen);
        FakeRouter.Call call = onlyCall(marker);
        assertTrue(call.awaitEnd(Duration.ofSeconds(10)), "the router call ended");
        assertTrue(call.cancelled(), "gRPC cancellation reached the router");
        assertTrue(call.sent() < 500, "sent " + call.sent());
    }

    @Test
    void aClientThatDisconnectsBeforeTheFirstTokenCancelsTheRouterCall() throws Exception {
        String marker = "leave-while-queued";
        String body = streaming(ChatCompletionsTest.chat(ChatCompletionsTest.script(
                "{\"reply\":\"late\",\"first_delay_ms\":4000,\"m\":\"" + marker + "\"}"), ""));
        String seen = Http.rawUntil(PATH, body, "never", Duration.ofMillis(500));
        assertEquals("", seen, "nothing is sent before the router's first message");
        FakeRouter.Call call = onlyCall(marker);
        assertTrue(call.awaitEnd(Duration.ofSeconds(3)), "cancelled well before the first token was due");
        assertTrue(call.cancelled());
    }

    @Test
    void aNonStreamingClientThatLeavesCancelsTheRouterCall() throws Exception {
        String marker = "leave-non-streaming";
        String body = ChatCompletionsTest.chat(ChatCompletionsTest.script(
                "{\"reply\":\"y\",\"repeat\":500,\"tokenize\":\"bytes\",\"delay_ms\":20,\"m\":\"" + marker + "\"}"), "");
        Http.rawUntil(PATH, body, "never", Duration.ofMillis(500));
        FakeRouter.Call call = onlyCall(marker);
        assertTrue(call.awaitEnd(Duration.ofSeconds(10)));
        assertTrue(call.cancelled());
    }

    @Test
    void otherStreamsKeepGoingWhileClientsLeave() throws Exception {
        String slow = streaming(ChatCompletionsTest.chat(ChatCompletionsTest.script(
                "{\"reply\":\"steady stream\",\"tokenize\":\"bytes\",\"delay_ms\":30}"), ""));
        CompletableFuture<HttpResponse<byte[]>> survivor = CompletableFuture.supplyAsync(() -> Http.post(PATH, slow));
        for (int i = 0; i < 5; i++) {
            String leaving = streaming(ChatCompletionsTest.chat(ChatCompletionsTest.script(
                    "{\"reply\":\"z\",\"repeat\":100,\"delay_ms\":10,\"m\":\"leaver-" + i + "\"}"), ""));
            Http.rawUntil(PATH, leaving, "\"content\":\"z", Duration.ofSeconds(10));
        }
        assertEquals("steady stream", Http.streamedText(Http.sseData(survivor.get()), 0));
        for (int i = 0; i < 5; i++) {
            FakeRouter.Call call = onlyCall("leaver-" + i);
            assertTrue(call.awaitEnd(Duration.ofSeconds(10)) && call.cancelled(), "leaver " + i);
        }
    }

    private FakeRouter.Call onlyCall(String marker) throws InterruptedException {
        for (int i = 0; i < 200; i++) {
            List<FakeRouter.Call> calls = router.callsWithPrompt(marker);
            if (!calls.isEmpty()) {
                assertEquals(1, calls.size());
                return calls.getFirst();
            }
            Thread.sleep(10);
        }
        throw new AssertionError("no router call with " + marker);
    }
}
