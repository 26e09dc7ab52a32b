package io.moeserve.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.Socket;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/**
 * Bad input of every kind gets a 4xx OpenAI error object naming the parameter, never a 500 or a hang, and the
 * service keeps serving afterwards.
 */
@QuarkusTest
@WithTestResource(FakeRouterResource.class)
class BadRequestsTest {
    static final String CHAT = "/v1/chat/completions";
    static final String COMPLETIONS = "/v1/completions";
    static final String MESSAGES = "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]";

    /** Asserts an OpenAI error object with this status, type, param (null for none) and, if given, code. */
    static JsonNode assertError(HttpResponse<byte[]> r, int status, String param, String code) {
        assertEquals(status, r.statusCode(), () -> Http.text(r));
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("application/json"), Http.text(r));
        JsonNode e = Http.json(r).get("error");
        assertTrue(e != null && e.get("message").isTextual() && !e.get("message").asText().isBlank(), Http.text(r));
        assertEquals(status >= 500 ? "server_error" : status == 429 ? "rate_limit_error" : "invalid_request_error",
                e.get("type").asText());
        assertTrue(e.has("param") && e.has("code"), "all four fields are present");
        if (param == null) assertTrue(e.get("param").isNull(), Http.text(r));
        else assertEquals(param, e.get("param").asText(), Http.text(r));
        if (code != null) assertEquals(code, e.get("code").asText(), Http.text(r));
        return e;
    }

    static HttpResponse<byte[]> chat(String fields) {
        return Http.post(CHAT, "{\"model\":\"tiny-moe\"," + fields + "}");
    }

    @Test
    void malformedJson() {
        assertError(Http.post(CHAT, "{\"model\": \"tiny-moe\", \"messages\": [}"), 400, null, null);
        assertError(Http.post(CHAT, ""), 400, null, null);
        assertError(Http.post(CHAT, "[1, 2]"), 400, null, null);
        assertError(Http.post(CHAT, "{\"model\":\"tiny-moe\"} trailing"), 400, null, null);
        assertError(Http.post(CHAT, "{".repeat(5000)), 400, null, null);
    }

    /** Bodies built to hurt a parser: each is a 400 in OpenAI's format, never a 500. */
    @Test
    void hostileJson() {
        String deep = "[".repeat(10_000) + "]".repeat(10_000);
        JsonNode e = assertError(chat(MESSAGES + ",\"metadata\":" + deep), 400, null, null);
        assertTrue(e.get("message").asText().contains("nested"), e.toString());
        assertError(Http.post(CHAT, "{\"a\":".repeat(10_000)), 400, null, null);
        String digits = "9".repeat(5_000);
        assertError(chat(MESSAGES + ",\"max_tokens\":" + digits), 400, null, null);
        assertError(chat(MESSAGES + ",\"temperature\":0." + digits), 400, null, null);
        assertError(chat(MESSAGES + ",\"temperature\":1e999999"), 400, "temperature", null);
        assertError(chat(MESSAGES + ",\"seed\":-1e999999"), 400, "seed", null);
        e = assertError(Http.post(CHAT, "{\"model\":\"tiny-moe\",\"model\":\"tiny-moe\"," + MESSAGES + "}"), 400, null, null);
        assertTrue(e.get("message").asText().contains("Duplicate field 'model'"), e.toString());
        assertError(chat("\"messages\":[{\"role\":\"user\",\"role\":\"system\",\"content\":\"hi\"}]"), 400, null, null);
        String whole = "{\"model\":\"tiny-moe\"," + MESSAGES + "}";
        for (int cut = 1; cut < whole.length(); cut += 7) {
            assertError(Http.post(CHAT, whole.substring(0, cut)), 400, null, null);
        }
        assertError(Http.post(CHAT, "\"hi\""), 400, null, null);
        assertError(Http.post(CHAT, "null"), 400, null, null);
        assertError(Http.post(CHAT, "  "), 400, null, null);
    }

    /**
     * OpenAI answers a body that is not declared JSON with 400 unsupported_content_type (openai/openai-openapi
     * issues 194 and 502 quote it); so does the gateway. JSON with a charset, or without a Content-Type, is served.
     */
    @Test
    void contentTypes() {
        byte[] body = ("{\"model\":\"tiny-moe\",\"max_tokens\":3," + MESSAGES + "}").getBytes(StandardCharsets.UTF_8);
        for (String type : new String[] {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
            "application/jsonl", "application/xml", "json", ""}) {
            JsonNode e = assertError(Http.post(CHAT, body, FakeRouterResource.API_KEY, type), 400, null,
                    "unsupported_content_type");
            assertTrue(e.get("message").asText().contains("'" + type + "'"), e.toString());
        }
        for (String type : new String[] {"application/json", "application/json; charset=utf-8", "Application/JSON", null}) {
            HttpResponse<byte[]> r = Http.post(CHAT, body, FakeRouterResource.API_KEY, type);
            assertEquals(200, r.statusCode(), type + ": " + Http.text(r));
        }
        assertError(Http.post(CHAT, body, null, "text/plain"), 401, null, "invalid_api_key");
    }

    @Test
    void invalidUtf8() {
        byte[] body = ("{\"model\":\"tiny-moe\",\"messages\":[{\"role\":\"user\",\"content\":\"ab\"}]}")
                .getBytes(StandardCharsets.UTF_8);
        byte[] bad = Arrays.copyOf(body, body.length);
        int at = new String(body, StandardCharsets.UTF_8).indexOf("ab");
        bad[at] = (byte) 0xC3;
        bad[at + 1] = (byte) 0x28;
        JsonNode e = assertError(Http.post(CHAT, bad, FakeRouterResource.API_KEY), 400, null, null);
        assertTrue(e.get("message").asText().contains("UTF-8"));
        // An escaped unpaired surrogate is valid JSON but not text the tokenizer can take.
        assertError(chat("\"messages\":[{\"role\":\"user\",\"content\":\"x\\ud800y\"}]"), 400, "messages[0].content", null);
    }

    @Test
    void wrongTypes() {
        assertError(chat(MESSAGES + ",\"temperature\":\"hot\""), 400, "temperature", "invalid_type");
        assertError(chat("\"messages\":\"hi\""), 400, "messages", "invalid_type");
        assertError(chat(MESSAGES + ",\"max_tokens\":5.5"), 400, "max_tokens", "invalid_type");
        assertError(chat(MESSAGES + ",\"stream\":\"yes\""), 400, "stream", "invalid_type");
        assertError(chat(MESSAGES + ",\"n\":\"2\""), 400, "n", "invalid_type");
        assertError(chat(MESSAGES + ",\"stop\":5"), 400, "stop", "invalid_type");
        assertError(chat(MESSAGES + ",\"stop\":[\"a\",7]"), 400, "stop[1]", "invalid_type");
        assertError(chat(MESSAGES + ",\"seed\":\"1\""), 400, "seed", "invalid_type");
        assertError(chat(MESSAGES + ",\"stream_options\":true,\"stream\":true"), 400, "stream_options", "invalid_type");
        assertError(chat("\"messages\":[{\"role\":\"user\",\"content\":7}]"), 400, "messages[0].content", "invalid_type");
        assertError(chat("\"messages\":[{\"content\":\"no role\"}]"), 400, "messages[0].role", null);
        assertError(chat("\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]"), 400, "messages[0].role", null);
        assertError(chat("\"messages\":[{\"role\":\"user\"}]"), 400, "messages[0].content", null);
        assertError(chat("\"messages\":[\"hi\"]"), 400, "messages[0]", "invalid_type");
        assertError(Http.post(CHAT, "{\"model\":7," + MESSAGES + "}"), 400, "model", "invalid_type");
    }

    @Test
    void modelAndMessages() {
        assertError(Http.post(CHAT, "{\"model\":\"gpt-4o\"," + MESSAGES + "}"), 404, "model", "model_not_found");
        assertError(Http.post(CHAT, "{" + MESSAGES + "}"), 400, "model", null);
        assertError(chat("\"messages\":[]"), 400, "messages", null);
        assertError(chat("\"temperature\":1"), 400, "messages", null);
        assertError(chat("\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]}]"),
                400, "messages[0].content[0].type", null);
    }

    @Test
    void outOfRangeValues() {
        assertError(chat(MESSAGES + ",\"max_tokens\":0"), 400, "max_tokens", null);
        assertError(chat(MESSAGES + ",\"max_tokens\":-5"), 400, "max_tokens", null);
        assertError(chat(MESSAGES + ",\"max_completion_tokens\":-1"), 400, "max_completion_tokens", null);
        assertError(chat(MESSAGES + ",\"max_tokens\":1000000"), 400, "max_tokens", "context_length_exceeded");
        assertError(chat(MESSAGES + ",\"max_tokens\":100000000000000000000000000000"), 400, "max_tokens",
                "context_length_exceeded");
        assertError(chat(MESSAGES + ",\"temperature\":2.5"), 400, "temperature", null);
        assertError(chat(MESSAGES + ",\"temperature\":-0.1"), 400, "temperature", null);
        assertError(chat(MESSAGES + ",\"top_p\":0"), 400, "top_p", null);
        assertError(chat(MESSAGES + ",\"top_p\":1.5"), 400, "top_p", null);
        assertError(chat(MESSAGES + ",\"n\":0"), 400, "n", null);
        assertError(chat(MESSAGES + ",\"n\":129"), 400, "n", null);
        assertError(chat(MESSAGES + ",\"logprobs\":true,\"top_logprobs\":21"), 400, "top_logprobs", null);
        assertError(chat(MESSAGES + ",\"top_logprobs\":3"), 400, "top_logprobs", null);
        assertError(chat(MESSAGES + ",\"presence_penalty\":3"), 400, "presence_penalty", null);
        assertError(chat(MESSAGES + ",\"frequency_penalty\":-2.01"), 400, "frequency_penalty", null);
        assertError(chat(MESSAGES + ",\"seed\":18446744073709551616"), 400, "seed", null);
        assertError(chat(MESSAGES + ",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]"), 400, "stop", null);
        assertError(chat(MESSAGES + ",\"stream_options\":{\"include_usage\":true}"), 400, "stream_options", null);
        assertError(chat(MESSAGES + ",\"stop_token_ids\":[999999]"), 400, "stop_token_ids[0]", null);
    }

    @Test
    void unsupportedParametersAreRefusedNotIgnored() {
        assertError(chat(MESSAGES + ",\"logit_bias\":{\"50256\":-100}"), 400, "logit_bias", null);
        assertError(chat(MESSAGES + ",\"response_format\":{\"type\":\"xml\"}"), 400, "response_format.type", null);
        assertError(chat(MESSAGES + ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\"}}"), 400,
                "response_format.json_schema.schema", null);
        assertError(chat(MESSAGES + ",\"tool_choice\":\"required\""), 400, "tool_choice", null);
        assertError(chat(MESSAGES + ",\"tool_choice\":\"sometimes\""), 400, "tool_choice", null);
        String tools = ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]";
        assertError(chat(MESSAGES + tools + ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"g\"}}"), 400,
                "tool_choice", null);
        // The test checkpoint's output is read as plain text (output-parser=none): no call format to hold output to.
        JsonNode e = assertError(chat(MESSAGES + tools + ",\"tool_choice\":\"required\""), 400, "tool_choice", null);
        assertTrue(e.get("message").asText().contains("Qwen's <tool_call>"), e.toString());
        assertError(chat(MESSAGES + tools + ",\"tool_choice\":\"required\",\"response_format\":{\"type\":\"json_object\"}"),
                400, "response_format", null);
        // echo works (OpenAiSdkTest), but not with logprobs: the prompt tokens' logprobs are not computed.
        JsonNode echo = assertError(Http.post(COMPLETIONS, "{\"model\":\"tiny-moe\",\"prompt\":\"x\",\"echo\":true,\"logprobs\":1}"), 400,
                "echo", null);
        assertTrue(echo.get("message").asText().contains("prompt tokens' logprobs"), echo.toString());
        assertError(Http.post(COMPLETIONS, "{\"model\":\"tiny-moe\",\"prompt\":\"x\",\"suffix\":\"y\"}"), 400, "suffix", null);
        // accepted and ignored: they change nothing about the answer
        assertEquals(200, chat(MESSAGES + ",\"user\":\"u1\",\"logit_bias\":{},\"response_format\":{\"type\":\"text\"},"
                + "\"tool_choice\":\"auto\",\"max_tokens\":3").statusCode());
        // Supported now (the fake router does not enforce them; RouterServiceTest and ChatApiIT check the output).
        assertEquals(200, chat(MESSAGES + ",\"response_format\":{\"type\":\"json_object\"},\"max_tokens\":3").statusCode());
    }

    /** vLLM's extras are refused unless set to what the server does anyway; max_completion_tokens works on completions. */
    @Test
    void vllmExtrasAreRefusedNotIgnored() {
        assertError(chat(MESSAGES + ",\"min_tokens\":2"), 400, "min_tokens", null);
        assertError(chat(MESSAGES + ",\"include_stop_str_in_output\":true"), 400, "include_stop_str_in_output", null);
        assertError(chat(MESSAGES + ",\"skip_special_tokens\":false"), 400, "skip_special_tokens", null);
        assertError(Http.post(COMPLETIONS, "{\"model\":\"tiny-moe\",\"prompt\":\"x\",\"continue_final_message\":true}"),
                400, "continue_final_message", null);
        assertEquals(200, chat(MESSAGES + ",\"min_tokens\":0,\"include_stop_str_in_output\":false,"
                + "\"skip_special_tokens\":true,\"max_tokens\":3").statusCode());
        assertError(Http.post(COMPLETIONS, "{\"model\":\"tiny-moe\",\"prompt\":\"x\",\"max_completion_tokens\":0}"),
                400, "max_completion_tokens", null);
    }

    @Test
    void completionPrompts() {
        assertError(Http.post(COMPLETIONS, "{\"model\":\"tiny-moe\"}"), 400, "prompt", null);
        assertError(Http.post(COMPLETIONS, "{\"model\":\"tiny-moe\",\"prompt\":[]}"), 400, "prompt", null);
        assertError(Http.post(COMPLETIONS, "{\"model\":\"tiny-moe\",\"prompt\":[1,\"a\"]}"), 400, "prompt[1]", "invalid_type");
        assertError(Http.post(COMPLETIONS, "{\"model\":\"tiny-moe\",\"prompt\":[1,-2]}"), 400, "prompt[1]", "invalid_type");
        assertError(Http.post(COMPLETIONS, "{\"model\":\"tiny-moe\",\"prompt\":[5,999999]}"), 400, "prompt", null);
        assertError(Http.post(COMPLETIONS, "{\"model\":\"tiny-moe\",\"prompt\":\"\"}"), 400, "prompt", null);
        assertError(Http.post(COMPLETIONS, "{\"model\":\"tiny-moe\",\"prompt\":{\"text\":\"x\"}}"), 400, "prompt", "invalid_type");
        assertError(Http.post(COMPLETIONS, "{\"model\":\"tiny-moe\",\"prompt\":\"x\",\"logprobs\":true}"), 400, "logprobs",
                "invalid_type");
        assertError(Http.post(COMPLETIONS, "{\"model\":\"tiny-moe\",\"prompt\":[\"a\",\"b\"],\"n\":100}"), 400, "prompt", null);
    }

    @Test
    void aPromptOverTheLimit() {
        String longText = "lorem ipsum dolor sit amet ".repeat(300);
        JsonNode e = assertError(chat("\"messages\":[{\"role\":\"user\",\"content\":\"" + longText + "\"}]"), 400,
                "messages", "context_length_exceeded");
        assertTrue(e.get("message").asText().contains("maximum prompt length is " + FakeRouterResource.MAX_PROMPT_TOKENS),
                e.toString());
        assertError(Http.post(COMPLETIONS, "{\"model\":\"tiny-moe\",\"prompt\":\"" + longText + "\"}"), 400, "prompt",
                "context_length_exceeded");
        // moe.gateway.max-prompt-tokens (900) is below the context (1024): 950 tokens fit the model, not the limit.
        int[] ids = new int[950];
        java.util.Arrays.fill(ids, 97);
        String idList = java.util.Arrays.toString(ids).replace(" ", "");
        assertError(Http.post(COMPLETIONS, "{\"model\":\"tiny-moe\",\"max_tokens\":10,\"prompt\":" + idList + "}"), 400,
                "prompt", "context_length_exceeded");
        int[] fits = java.util.Arrays.copyOf(ids, 890);
        assertEquals(200, Http.post(COMPLETIONS, "{\"model\":\"tiny-moe\",\"max_tokens\":10,\"prompt\":"
                + java.util.Arrays.toString(fits).replace(" ", "") + "}").statusCode());
    }

    @Test
    void aTenMegabyteBodyIsA413InOpenAiFormat() {
        byte[] big = new byte[10 << 20];
        Arrays.fill(big, (byte) ' ');
        byte[] prefix = "{\"model\":\"tiny-moe\",\"prompt\":\"".getBytes(StandardCharsets.UTF_8);
        System.arraycopy(prefix, 0, big, 0, prefix.length);
        JsonNode e = assertError(Http.post(COMPLETIONS, big, FakeRouterResource.API_KEY), 413, null, "request_too_large");
        assertTrue(e.get("message").asText().contains("at most"));
    }

    /** Without Content-Length (chunked upload) the limit holds too, and the answer is the same JSON. */
    @Test
    void anOversizedChunkedBodyIsA413InOpenAiFormat() {
        String response = rawChunkedPost(COMPLETIONS, 2 << 20);
        assertTrue(response.startsWith("HTTP/1.1 413"), response);
        String json = response.substring(response.indexOf("\r\n\r\n") + 4);
        assertTrue(json.contains("\"code\":\"request_too_large\""), response);
    }

    @Test
    void unknownUrlsAndMethods() {
        assertError(Http.post("/v1/nothing/here", "{}"), 404, null, "unknown_url");
        assertError(Http.get("/v1/chat/completions", FakeRouterResource.API_KEY), 405, null, "method_not_allowed");
    }

    @Test
    void theServiceKeepsServingAfterBadInput() {
        malformedJson();
        invalidUtf8();
        aTenMegabyteBodyIsA413InOpenAiFormat();
        HttpResponse<byte[]> ok = Http.post(CHAT, "{\"model\":\"tiny-moe\"," + MESSAGES + "}");
        assertEquals(200, ok.statusCode(), Http.text(ok));
        assertEquals(FakeRouter.DEFAULT_REPLY, Http.json(ok).at("/choices/0/message/content").asText());
    }

    /** Sends a body of the given size as HTTP/1.1 chunks, then reads what comes back. */
    static String rawChunkedPost(String path, int size) {
        try (Socket s = new Socket("localhost", Http.port())) {
            s.setSoTimeout(20_000);
            OutputStream out = s.getOutputStream();
            out.write(("POST " + path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                    + "Authorization: Bearer " + FakeRouterResource.API_KEY + "\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            byte[] chunk = new byte[64 << 10];
            Arrays.fill(chunk, (byte) ' ');
            try {
                for (int sent = 0; sent < size; sent += chunk.length) {
                    out.write((Integer.toHexString(chunk.length) + "\r\n").getBytes(StandardCharsets.US_ASCII));
                    out.write(chunk);
                    out.write("\r\n".getBytes(StandardCharsets.US_ASCII));
                }
                out.write("0\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
                out.flush();
            } catch (IOException e) {
                // the server may close before we are done; what it answered is still readable
            }
            InputStream in = s.getInputStream();
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
