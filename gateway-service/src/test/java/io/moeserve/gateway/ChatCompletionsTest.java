package io.moeserve.gateway;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.proto.router.v1.StructuredOutput;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import java.io.ByteArrayOutputStream;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/** /v1/chat/completions against the fake router: text, streaming, the chunk format, stop strings, n, logprobs. */
@QuarkusTest
@WithTestResource(FakeRouterResource.class)
class ChatCompletionsTest {

    @InjectFakeRouter
    FakeRouter router;

    static final String PATH = "/v1/chat/completions";

    /** A one-message chat request; extra is more top-level JSON fields ("" for none). */
    static String chat(String content, String extra) {
        return "{\"model\":\"tiny-moe\",\"messages\":[{\"role\":\"user\",\"content\":" + Http.JSON.valueToTree(content)
                + "}]" + (extra.isEmpty() ? "" : "," + extra) + "}";
    }

    /** A user message that makes the fake router answer with this script. */
    static String script(String json) {
        return "Please answer. FAKE" + json;
    }

    @Test
    void nonStreamingAnswerHasOpenAisShape() {
        HttpResponse<byte[]> r = Http.post(PATH, chat("Hi there", ""));
        assertEquals(200, r.statusCode(), Http.text(r));
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("application/json"));
        JsonNode body = Http.json(r);
        assertTrue(body.get("id").asText().startsWith("chatcmpl-"));
        assertEquals(body.get("id").asText(), r.headers().firstValue("X-Request-Id").orElse(""));
        assertEquals("chat.completion", body.get("object").asText());
        assertEquals("tiny-moe", body.get("model").asText());
        assertTrue(Math.abs(body.get("created").asLong() - System.currentTimeMillis() / 1000) < 60);
        JsonNode choice = body.at("/choices/0");
        assertEquals(0, choice.get("index").asInt());
        assertEquals("assistant", choice.at("/message/role").asText());
        assertEquals(FakeRouter.DEFAULT_REPLY, choice.at("/message/content").asText());
        assertTrue(choice.at("/message/refusal").isNull());
        assertTrue(choice.get("logprobs").isNull());
        assertEquals("stop", choice.get("finish_reason").asText());
        int replyTokens = router.vocabulary().encode(FakeRouter.DEFAULT_REPLY, false).length;
        JsonNode usage = body.get("usage");
        assertEquals(replyTokens + 1, usage.get("completion_tokens").asInt(), "the reply and the EOS token");
        assertEquals(usage.get("prompt_tokens").asInt() + usage.get("completion_tokens").asInt(),
                usage.get("total_tokens").asInt());
        assertFalse(choice.at("/message/content").asText().contains("<|im_end|>"));
    }

    @Test
    void streamingAndNonStreamingReturnTheSameText() {
        String[] scripts = {
                "{}",
                // every UTF-8 byte its own token: the emoji and CJK characters arrive split over 3-4 tokens
                "{\"reply\":\"Grüße, 你好 😀 and \\\"quotes\\\"\\n\\ttab\",\"tokenize\":\"bytes\"}",
                "{\"reply\":\"several tokens per message, 多字节 ✓\",\"per_message\":3,\"tokenize\":\"bytes\"}",
                "{\"reply\":\"the quick brown fox jumps over the lazy dog\",\"per_message\":2}",
        };
        for (String s : scripts) {
            String whole = Http.json(Http.post(PATH, chat(script(s), ""))).at("/choices/0/message/content").asText();
            String streamed = Http.streamedText(Http.sseData(Http.post(PATH, chat(script(s), "\"stream\":true"))), 0);
            assertEquals(whole, streamed, s);
            String expected = Http.json(s).path("reply").asText(FakeRouter.DEFAULT_REPLY);
            assertEquals(expected, whole, s);
        }
    }

    /**
     * The exact bytes: role chunk, one chunk per token, the finish chunk, [DONE]; nothing else. The emoji is four
     * byte tokens: no chunk until its last byte, then the character as plain UTF-8.
     */
    @Test
    void streamBytesAreExactlyOpenAisChunkFormat() {
        HttpResponse<byte[]> r = Http.post(PATH, chat(script("{\"reply\":\"Hi😀\",\"tokenize\":\"bytes\"}"), "\"stream\":true"));
        assertEquals(200, r.statusCode(), Http.text(r));
        assertEquals("text/event-stream", r.headers().firstValue("Content-Type").orElse(""));
        String body = Http.text(r);
        JsonNode first = Http.json(body.substring(6, body.indexOf("\n\n")));
        String head = "{\"id\":\"" + first.get("id").asText() + "\",\"object\":\"chat.completion.chunk\",\"created\":"
                + first.get("created").asLong() + ",\"model\":\"tiny-moe\",\"choices\":[";
        String expected = "data: " + head + "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                + "\"logprobs\":null,\"finish_reason\":null}]}\n\n"
                + "data: " + head + "{\"index\":0,\"delta\":{\"content\":\"H\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
                + "data: " + head + "{\"index\":0,\"delta\":{\"content\":\"i\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
                + "data: " + head + "{\"index\":0,\"delta\":{\"content\":\"😀\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
                + "data: " + head + "{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n"
                + "data: [DONE]\n\n";
        assertEquals(expected, body);
    }

    /** What an HTTP library hides: the headers and the chunked framing on the wire. */
    @Test
    void rawHttpShowsAnEventStreamWithoutExtraFields() {
        String raw = Http.rawUntil(PATH, chat(script("{\"reply\":\"ok\"}"), "\"stream\":true"), "data: [DONE]\n\n",
                Duration.ofSeconds(20));
        assertTrue(raw.startsWith("HTTP/1.1 200 OK\r\n"), raw);
        String headers = raw.substring(0, raw.indexOf("\r\n\r\n")).toLowerCase();
        assertTrue(headers.contains("content-type: text/event-stream"), headers);
        assertTrue(headers.contains("transfer-encoding: chunked"), headers);
        assertFalse(raw.contains("\nid:") || raw.contains("\nevent:") || raw.contains("data:{"), raw);
    }

    @Test
    void includeUsagePutsNullUsageInEveryChunkAndAFinalUsageChunk() {
        HttpResponse<byte[]> r = Http.post(PATH, chat(script("{\"reply\":\"Count me\"}"),
                "\"stream\":true,\"stream_options\":{\"include_usage\":true}"));
        List<String> events = Http.sseData(r);
        for (int i = 0; i < events.size() - 1; i++) {
            JsonNode chunk = Http.json(events.get(i));
            assertTrue(chunk.has("usage") && chunk.get("usage").isNull(), events.get(i));
            assertEquals(1, chunk.get("choices").size());
        }
        JsonNode last = Http.json(events.getLast());
        assertEquals(0, last.get("choices").size());
        JsonNode whole = Http.json(Http.post(PATH, chat(script("{\"reply\":\"Count me\"}"), ""))).get("usage");
        assertEquals(whole, last.get("usage"));

        // Without include_usage, no chunk has a usage field at all.
        for (String e : Http.sseData(Http.post(PATH, chat(script("{\"reply\":\"x\"}"), "\"stream\":true")))) {
            assertFalse(Http.json(e).has("usage"), e);
        }
    }

    @Test
    void stopStringSpanningTokensIsCutExactlyAndCancelsTheRouterCall() throws Exception {
        String reply = "Hello world. User: this must not appear";
        for (boolean stream : new boolean[] {false, true}) {
            String marker = "stop-" + stream;
            String body = chat(script("{\"reply\":\"" + reply + "\",\"tokenize\":\"bytes\",\"delay_ms\":5,\"marker\":\""
                    + marker + "\"}"), "\"stream\":" + stream + ",\"stop\":[\"nothing\",\"d. Us\"]");
            HttpResponse<byte[]> r = Http.post(PATH, body);
            String text;
            String finish;
            String id;
            if (stream) {
                List<String> events = Http.sseData(r);
                text = Http.streamedText(events, 0);
                finish = Http.json(events.getLast()).at("/choices/0/finish_reason").asText();
                id = Http.json(events.getFirst()).get("id").asText();
            } else {
                JsonNode json = Http.json(r);
                text = json.at("/choices/0/message/content").asText();
                finish = json.at("/choices/0/finish_reason").asText();
                id = json.get("id").asText();
            }
            assertEquals("Hello worl", text, "stream=" + stream);
            assertEquals("stop", finish);
            FakeRouter.Call call = router.call(id + "-0");
            assertTrue(call.awaitEnd(Duration.ofSeconds(10)));
            assertTrue(call.cancelled(), "the gateway cancels the router call once the stop string matched");
            assertTrue(call.sent() < reply.length(), "the router stopped early: sent " + call.sent());
        }
    }

    @Test
    void aPossibleStopPrefixAtTheEndIsReleasedWhenGenerationEnds() {
        String s = script("{\"reply\":\"abc\\n\\nUs\",\"tokenize\":\"bytes\"}");
        String whole = Http.json(Http.post(PATH, chat(s, "\"stop\":\"\\n\\nUser:\""))).at("/choices/0/message/content").asText();
        assertEquals("abc\n\nUs", whole);
        List<String> events = Http.sseData(Http.post(PATH, chat(s, "\"stop\":\"\\n\\nUser:\",\"stream\":true")));
        assertEquals("abc\n\nUs", Http.streamedText(events, 0));
        // "a", "b", "c" went out at once; the possible start of the stop string only at the end, in one piece.
        List<String> deltas = events.stream().map(e -> Http.json(e).at("/choices/0/delta/content"))
                .filter(JsonNode::isTextual).map(JsonNode::asText).toList();
        assertEquals(List.of("", "a", "b", "c", "\n\nUs"), deltas);
    }

    @Test
    void nChoicesHaveIndexesAndSeedsSeedPlusI() throws Exception {
        HttpResponse<byte[]> r = Http.post(PATH, chat(script("{\"reply\":\"same\"}"),
                "\"n\":3,\"seed\":42,\"temperature\":0.7,\"top_p\":0.9,\"presence_penalty\":0.5,"
                        + "\"frequency_penalty\":-0.5,\"max_tokens\":50,\"max_completion_tokens\":20"));
        JsonNode body = Http.json(r);
        assertEquals(3, body.get("choices").size());
        for (int i = 0; i < 3; i++) {
            assertEquals(i, body.at("/choices/" + i + "/index").asInt());
            assertEquals("same", body.at("/choices/" + i + "/message/content").asText());
            GenerateRequest sent = router.call(body.get("id").asText() + "-" + i).request;
            assertEquals(42 + i, sent.getSampling().getSeed());
            assertEquals(0.7f, sent.getSampling().getTemperature());
            assertEquals(0.9f, sent.getSampling().getTopP());
            assertEquals(0.5f, sent.getSampling().getPresencePenalty());
            assertEquals(-0.5f, sent.getSampling().getFrequencyPenalty());
            assertEquals(20, sent.getMaxNewTokens(), "max_completion_tokens wins over max_tokens");
            assertEquals("tiny-moe", sent.getModelId());
        }
        assertEquals(3 * (router.vocabulary().encode("same", false).length + 1), body.at("/usage/completion_tokens").asInt());

        List<String> events = Http.sseData(Http.post(PATH, chat(script("{\"reply\":\"same\"}"), "\"n\":3,\"stream\":true")));
        String id = Http.json(events.getFirst()).get("id").asText();
        for (int i = 0; i < 3; i++) {
            assertEquals("same", Http.streamedText(events, i));
            assertFalse(router.call(id + "-" + i).request.getSampling().hasSeed(), "no seed asked, none sent");
        }
        long finishes = events.stream().filter(e -> !Http.json(e).at("/choices/0/finish_reason").isNull()).count();
        assertEquals(3, finishes);
    }

    @Test
    void maxTokensEndsWithLengthAndTheDefaultIsWhatFitsTheContext() throws Exception {
        JsonNode body = Http.json(Http.post(PATH, chat(script("{\"reply\":\"a long answer\",\"tokenize\":\"bytes\"}"),
                "\"max_tokens\":4")));
        assertEquals("a lo", body.at("/choices/0/message/content").asText());
        assertEquals("length", body.at("/choices/0/finish_reason").asText());
        assertEquals(4, body.at("/usage/completion_tokens").asInt());

        JsonNode unlimited = Http.json(Http.post(PATH, chat("default budget", "")));
        GenerateRequest sent = router.call(unlimited.get("id").asText() + "-0").request;
        assertEquals(FakeRouter.MAX_CONTEXT - sent.getPromptTokenIdsCount(), sent.getMaxNewTokens());
        assertEquals(unlimited.at("/usage/prompt_tokens").asInt(), sent.getPromptTokenIdsCount());
        assertTrue(sent.getDeadlineUnixMillis() > System.currentTimeMillis());
    }

    @Test
    void chatLogprobsHaveTokensBytesAndAlternatives() {
        String s = script("{\"reply\":\"é😀\",\"tokenize\":\"bytes\"}");
        JsonNode body = Http.json(Http.post(PATH, chat(s, "\"logprobs\":true,\"top_logprobs\":2")));
        String content = body.at("/choices/0/message/content").asText();
        assertEquals("é😀", content);
        JsonNode entries = body.at("/choices/0/logprobs/content");
        byte[] utf8 = content.getBytes(StandardCharsets.UTF_8);
        assertEquals(utf8.length, entries.size(), "one entry per generated token, not the EOS");
        ByteArrayOutputStream joined = new ByteArrayOutputStream();
        for (int i = 0; i < entries.size(); i++) {
            JsonNode e = entries.get(i);
            assertEquals(-0.25, e.get("logprob").asDouble(), 1e-6);
            for (JsonNode b : e.get("bytes")) joined.write(b.asInt());
            assertEquals(utf8[i] & 0xFF, e.at("/bytes/0").asInt());
            assertEquals(2, e.get("top_logprobs").size());
            assertEquals(e.get("token").asText(), e.at("/top_logprobs/0/token").asText());
            assertEquals(-1.25, e.at("/top_logprobs/1/logprob").asDouble(), 1e-6);
            assertEquals(((utf8[i] & 0xFF) + 1), e.at("/top_logprobs/1/bytes/0").asInt());
        }
        assertArrayEquals(utf8, joined.toByteArray(), "the tokens' bytes spell the content exactly");
        assertTrue(body.at("/choices/0/logprobs/refusal").isNull());

        List<String> events = Http.sseData(Http.post(PATH, chat(s, "\"logprobs\":true,\"top_logprobs\":2,\"stream\":true")));
        int streamedEntries = 0;
        for (String e : events) {
            JsonNode lp = Http.json(e).at("/choices/0/logprobs");
            if (!lp.isMissingNode() && !lp.isNull()) streamedEntries += lp.get("content").size();
        }
        assertEquals(entries.size(), streamedEntries);

        JsonNode noTop = Http.json(Http.post(PATH, chat(s, "\"logprobs\":true")));
        assertEquals(0, noTop.at("/choices/0/logprobs/content/0/top_logprobs").size());
    }

    /** The checkpoint's template (ChatML), all roles, tools, and text parts; the fake echoes the prompt. */
    @Test
    void theCheckpointsChatTemplateRendersTheConversation() {
        String body = """
                {"model":"tiny-moe",
                 "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],
                 "messages":[
                  {"role":"system","content":"Be brief."},
                  {"role":"user","content":[{"type":"text","text":"Weather?"},{"type":"text","text":"FAKE{\\"echo_prompt\\":true}"}]},
                  {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
                    "function":{"name":"get_weather","arguments":"{\\"city\\": \\"Oslo\\"}"}}]},
                  {"role":"tool","tool_call_id":"c1","content":"sunny"}]}""";
        HttpResponse<byte[]> r = Http.post(PATH, body);
        assertEquals(200, r.statusCode(), Http.text(r));
        String prompt = Http.json(r).at("/choices/0/message/content").asText();
        String expected = "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call these functions:\n<tools>\n"
                + "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\"}}}\n"
                + "</tools>\n\nTo call one, answer with <tool_call>{\"name\": <name>, \"arguments\": <json object>}</tool_call>."
                + "<|im_end|>\n"
                + "<|im_start|>user\nWeather?\nFAKE{\"echo_prompt\":true}<|im_end|>\n"
                + "<|im_start|>assistant\n<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}</tool_call><|im_end|>\n"
                + "<|im_start|>tool\nsunny<|im_end|>\n"
                + "<|im_start|>assistant\n";
        assertEquals(expected, prompt);
    }

    /** response_format reaches the router as structured output: the schema as sent, json_object as any object. */
    @Test
    void responseFormatTravelsToTheRouterAsStructuredOutput() throws Exception {
        String schema = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}},\"required\":[\"a\"],"
                + "\"additionalProperties\":false}";
        JsonNode body = Http.json(Http.post(PATH, chat("structured", "\"response_format\":{\"type\":\"json_schema\","
                + "\"json_schema\":{\"name\":\"x\",\"strict\":true,\"schema\":" + schema + "}}")));
        StructuredOutput sent = router.call(body.get("id").asText() + "-0").request.getStructuredOutput();
        assertEquals(Http.JSON.readTree(schema), Http.JSON.readTree(sent.getJsonSchema()));
        assertEquals("", sent.getPrefix() + sent.getSuffix());
        body = Http.json(Http.post(PATH, chat("any object", "\"response_format\":{\"type\":\"json_object\"}")));
        sent = router.call(body.get("id").asText() + "-0").request.getStructuredOutput();
        assertEquals(Http.JSON.readTree("{\"type\":\"object\"}"), Http.JSON.readTree(sent.getJsonSchema()));
        body = Http.json(Http.post(PATH, chat("plain", "\"response_format\":{\"type\":\"text\"}")));
        assertFalse(router.call(body.get("id").asText() + "-0").request.hasStructuredOutput());
    }

    /** tool_choice none: the model is not to call tools, so the template does not show it any. */
    @Test
    void toolChoiceNoneLeavesTheToolsOutOfThePrompt() {
        String tools = "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}]";
        String none = Http.json(Http.post(PATH, chat(script("{\"echo_prompt\":true}"), tools + ",\"tool_choice\":\"none\"")))
                .at("/choices/0/message/content").asText();
        assertFalse(none.contains("get_weather"), none);
        String auto = Http.json(Http.post(PATH, chat(script("{\"echo_prompt\":true}"), tools + ",\"tool_choice\":\"auto\"")))
                .at("/choices/0/message/content").asText();
        assertTrue(auto.contains("get_weather"), auto);
    }

    @Test
    void templateErrorsAreBadRequests() {
        String body = "{\"model\":\"tiny-moe\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},"
                + "{\"role\":\"system\",\"content\":\"late\"}]}";
        HttpResponse<byte[]> r = Http.post(PATH, body);
        assertEquals(400, r.statusCode());
        assertEquals("messages", Http.json(r).at("/error/param").asText());
        assertTrue(Http.json(r).at("/error/message").asText().contains("A system message may only come first"));
    }
}
