package io.moeserve.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import java.net.http.HttpResponse;
import java.util.List;
import org.junit.jupiter.api.Test;

/** /v1/completions: text and token-id prompts, prompt arrays × n, the legacy logprobs format, streaming. */
@QuarkusTest
@WithTestResource(FakeRouterResource.class)
class CompletionsTest {

    @InjectFakeRouter
    FakeRouter router;

    static final String PATH = "/v1/completions";

    static String completion(String prompt, String extra) {
        return "{\"model\":\"tiny-moe\",\"prompt\":" + Http.JSON.valueToTree(prompt) + (extra.isEmpty() ? "" : "," + extra) + "}";
    }

    @Test
    void textCompletionStreamedAndNotGivesTheSameText() {
        String prompt = "Once upon a time FAKE{\"reply\":\" there was a gateway.\",\"per_message\":2}";
        JsonNode whole = Http.json(Http.post(PATH, completion(prompt, "\"max_tokens\":100")));
        assertEquals("text_completion", whole.get("object").asText());
        assertTrue(whole.get("id").asText().startsWith("cmpl-"));
        assertEquals(" there was a gateway.", whole.at("/choices/0/text").asText());
        assertEquals("stop", whole.at("/choices/0/finish_reason").asText());
        assertTrue(whole.at("/choices/0/logprobs").isNull());

        List<String> events = Http.sseData(Http.post(PATH, completion(prompt, "\"max_tokens\":100,\"stream\":true")));
        assertEquals(" there was a gateway.", Http.streamedText(events, 0));
        JsonNode chunk = Http.json(events.getFirst());
        assertEquals("text_completion", chunk.get("object").asText());
        assertTrue(chunk.at("/choices/0").has("text") && !chunk.at("/choices/0").has("delta"));
        assertEquals("stop", Http.json(events.getLast()).at("/choices/0/finish_reason").asText());
        assertEquals("", Http.json(events.getLast()).at("/choices/0/text").asText());
    }

    /**
     * Degraded mode: the router's count of masked (token, expert) pairs becomes a header; a stream's header has what
     * was known at its first chunk, and a closing SSE comment the whole count.
     */
    @Test
    void maskedExpertsAreReportedInAHeaderAndAtTheEndOfAStream() {
        String prompt = "FAKE{\"reply\":\"abcdef\",\"tokenize\":\"bytes\",\"per_message\":2,\"masked_per_message\":3}";
        HttpResponse<byte[]> whole = Http.post(PATH, completion(prompt, "\"max_tokens\":100"));
        assertEquals(200, whole.statusCode());
        assertEquals("abcdef", Http.json(whole).at("/choices/0/text").asText());
        // Four messages (six bytes and the EOS, two a message), three pairs each, which the router sends as a running total.
        assertEquals("masked-experts=12", whole.headers().firstValue("x-moe-degraded").orElse(null));

        HttpResponse<byte[]> stream = Http.post(PATH, completion(prompt, "\"max_tokens\":100,\"stream\":true"));
        assertEquals(200, stream.statusCode());
        assertEquals("masked-experts=3", stream.headers().firstValue("x-moe-degraded").orElse(null));
        String body = Http.text(stream);
        String comment = ": x-moe-degraded masked-experts=12\n\n";
        assertTrue(body.contains("\n\n" + comment + "data: [DONE]"), body);
        assertEquals("abcdef", Http.streamedText(Http.sseData(body.replace(comment, "")), 0), "the comment is the only addition");

        HttpResponse<byte[]> healthy = Http.post(PATH, completion("FAKE{\"reply\":\"abc\"}", "\"max_tokens\":100"));
        assertTrue(healthy.headers().firstValue("x-moe-degraded").isEmpty(), "no header when nothing was masked");
    }

    /** max_completion_tokens is taken on completions as on chat, and wins over max_tokens (vLLM does the same). */
    @Test
    void maxCompletionTokensIsMaxTokens() throws Exception {
        JsonNode r = Http.json(Http.post(PATH, completion("FAKE{\"reply\":\"x\",\"repeat\":40,\"tokenize\":\"bytes\"}",
                "\"max_tokens\":9,\"max_completion_tokens\":5")));
        assertEquals("xxxxx", r.at("/choices/0/text").asText());
        assertEquals(5, router.call(r.get("id").asText() + "-0").request.getMaxNewTokens());
    }

    /** OpenAI's documented default for this endpoint is 16 tokens. */
    @Test
    void defaultMaxTokensIsSixteen() throws Exception {
        JsonNode r = Http.json(Http.post(PATH, completion("FAKE{\"reply\":\"x\",\"repeat\":40,\"tokenize\":\"bytes\"}", "")));
        assertEquals("x".repeat(16), r.at("/choices/0/text").asText());
        assertEquals("length", r.at("/choices/0/finish_reason").asText());
        assertEquals(16, router.call(r.get("id").asText() + "-0").request.getMaxNewTokens());
    }

    /** The dynamic expert skipping extension reaches the router as the request's own threshold, and only when given. */
    @Test
    void moeSkipThresholdIsCarriedToTheRouterAndRangeChecked() throws Exception {
        JsonNode r = Http.json(Http.post(PATH, completion("FAKE{\"reply\":\"ok\"}", "\"max_tokens\":5,\"moe_skip_threshold\":0.3")));
        GenerateRequest sent = router.call(r.get("id").asText() + "-0").request;
        assertTrue(sent.hasSkipThreshold());
        assertEquals(0.3f, sent.getSkipThreshold());
        JsonNode plain = Http.json(Http.post(PATH, completion("FAKE{\"reply\":\"ok\"}", "\"max_tokens\":5")));
        assertFalse(router.call(plain.get("id").asText() + "-0").request.hasSkipThreshold(), "unset: the router's setting");
        HttpResponse<byte[]> bad = Http.post(PATH, completion("x", "\"max_tokens\":5,\"moe_skip_threshold\":1.5"));
        assertEquals(400, bad.statusCode());
        assertEquals("moe_skip_threshold", Http.json(bad).at("/error/param").asText());
    }

    @Test
    void promptArraysTimesNGiveChoicesInOrder() throws Exception {
        String body = "{\"model\":\"tiny-moe\",\"n\":2,\"seed\":7,\"max_tokens\":20,\"prompt\":["
                + "\"A FAKE{\\\"reply\\\":\\\"first\\\"}\",\"B FAKE{\\\"reply\\\":\\\"second\\\"}\"]}";
        JsonNode r = Http.json(Http.post(PATH, body));
        assertEquals(4, r.get("choices").size());
        String[] expected = {"first", "first", "second", "second"};
        int promptTokens = 0;
        for (int i = 0; i < 4; i++) {
            assertEquals(i, r.at("/choices/" + i + "/index").asInt());
            assertEquals(expected[i], r.at("/choices/" + i + "/text").asText());
            GenerateRequest sent = router.call(r.get("id").asText() + "-" + i).request;
            assertEquals(7 + i % 2, sent.getSampling().getSeed(), "seed + i within each prompt's n choices");
            if (i % 2 == 0) promptTokens += sent.getPromptTokenIdsCount();
        }
        assertEquals(promptTokens, r.at("/usage/prompt_tokens").asInt(), "each prompt counted once");

        List<String> events = Http.sseData(Http.post(PATH, body.replace("\"n\":2", "\"n\":2,\"stream\":true")));
        for (int i = 0; i < 4; i++) assertEquals(expected[i], Http.streamedText(events, i));
    }

    @Test
    void tokenIdPromptsAreUsedAsTheyAre() throws Exception {
        int[] ids = router.vocabulary().encode("FAKE{\"reply\":\"from ids\"}", false);
        StringBuilder list = new StringBuilder();
        for (int id : ids) list.append(list.isEmpty() ? "" : ",").append(id);
        JsonNode r = Http.json(Http.post(PATH, "{\"model\":\"tiny-moe\",\"max_tokens\":30,\"prompt\":[" + list + "]}"));
        assertEquals("from ids", r.at("/choices/0/text").asText());
        GenerateRequest sent = router.call(r.get("id").asText() + "-0").request;
        assertEquals(ids.length, sent.getPromptTokenIdsCount());
        for (int i = 0; i < ids.length; i++) assertEquals(ids[i], sent.getPromptTokenIds(i));

        JsonNode two = Http.json(Http.post(PATH, "{\"model\":\"tiny-moe\",\"max_tokens\":30,\"prompt\":[[" + list
                + "],[" + list + "]]}"));
        assertEquals(2, two.get("choices").size());
        assertEquals("from ids", two.at("/choices/1/text").asText());
    }

    @Test
    void legacyLogprobsFormat() {
        String prompt = "FAKE{\"reply\":\"ab\",\"tokenize\":\"bytes\"}";
        JsonNode lp = Http.json(Http.post(PATH, completion(prompt, "\"logprobs\":2,\"max_tokens\":10"))).at("/choices/0/logprobs");
        assertEquals(List.of("a", "b"), List.of(lp.at("/tokens/0").asText(), lp.at("/tokens/1").asText()));
        assertEquals(-0.25, lp.at("/token_logprobs/1").asDouble(), 1e-6);
        assertEquals(0, lp.at("/text_offset/0").asInt());
        assertEquals(1, lp.at("/text_offset/1").asInt());
        JsonNode top = lp.at("/top_logprobs/0");
        assertEquals(2, top.size());
        assertEquals(-0.25, top.get("a").asDouble(), 1e-6);
        assertEquals(-1.25, top.get("b").asDouble(), 1e-6, "the alternative after 'a' is 'b' in the fake");

        JsonNode zero = Http.json(Http.post(PATH, completion(prompt, "\"logprobs\":0,\"max_tokens\":10"))).at("/choices/0/logprobs");
        assertEquals(1, zero.at("/top_logprobs/0").size(), "logprobs=0 still reports the sampled token");

        List<String> events = Http.sseData(Http.post(PATH, completion(prompt, "\"logprobs\":1,\"stream\":true")));
        StringBuilder tokens = new StringBuilder();
        for (String e : events) {
            JsonNode l = Http.json(e).at("/choices/0/logprobs");
            if (l.isObject()) for (JsonNode t : l.get("tokens")) tokens.append(t.asText());
        }
        assertEquals("ab", tokens.toString());
    }

    @Test
    void stopStringsInCompletions() {
        String prompt = "FAKE{\"reply\":\"one, two, three\",\"tokenize\":\"bytes\"}";
        JsonNode r = Http.json(Http.post(PATH, completion(prompt, "\"stop\":\", th\",\"max_tokens\":30")));
        assertEquals("one, two", r.at("/choices/0/text").asText());
        HttpResponse<byte[]> s = Http.post(PATH, completion(prompt, "\"stop\":[\", th\"],\"max_tokens\":30,\"stream\":true"));
        assertEquals("one, two", Http.streamedText(Http.sseData(s), 0));
    }
}
