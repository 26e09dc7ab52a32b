package io.moeserve.gateway;

import static io.moeserve.gateway.BadRequestsTest.assertError;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import jakarta.inject.Inject;
import java.net.http.HttpResponse;
import org.junit.jupiter.api.Test;

/**
 * vLLM's /tokenize and /detokenize: the ids are the ones completions and chat send to the router, and the text
 * round-trips.
 */
@QuarkusTest
@WithTestResource(FakeRouterResource.class)
class TokenizeTest {

    @InjectFakeRouter
    FakeRouter router;

    @Inject
    ServedModel model;

    static int[] ids(JsonNode tokens) {
        int[] out = new int[tokens.size()];
        for (int i = 0; i < out.length; i++) out[i] = tokens.get(i).asInt();
        return out;
    }

    static int[] sent(FakeRouter router, JsonNode completion) throws InterruptedException {
        return router.call(completion.get("id").asText() + "-0").request.getPromptTokenIdsList().stream()
                .mapToInt(Integer::intValue).toArray();
    }

    @Test
    void aTextPromptTokenizesAsCompletionsEncodeItAndDetokenizesBack() throws Exception {
        String prompt = "Once upon a time, FAKE{\"reply\":\"x\"}";
        JsonNode t = Http.json(Http.post("/tokenize", "{\"model\":\"tiny-moe\",\"prompt\":"
                + Http.JSON.valueToTree(prompt) + "}"));
        int[] tokens = ids(t.get("tokens"));
        assertEquals(tokens.length, t.get("count").asInt());
        assertEquals(FakeRouter.MAX_CONTEXT, t.get("max_model_len").asInt());
        assertArrayEquals(model.tokenizer().encode(prompt, true), tokens);

        JsonNode completion = Http.json(Http.post(CompletionsTest.PATH, CompletionsTest.completion(prompt, "")));
        assertArrayEquals(sent(router, completion), tokens, "the same ids as a completion's prompt");

        JsonNode text = Http.json(Http.post("/detokenize", "{\"model\":\"tiny-moe\",\"tokens\":" + t.get("tokens") + "}"));
        assertEquals(prompt, text.get("prompt").asText());

        JsonNode plain = Http.json(Http.post("/tokenize", "{\"model\":\"tiny-moe\",\"prompt\":\"abc\",\"add_special_tokens\":false}"));
        assertArrayEquals(model.tokenizer().encode("abc", false), ids(plain.get("tokens")));
    }

    @Test
    void messagesTokenizeAsChatRendersThem() throws Exception {
        String messages = "\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                + "{\"role\":\"user\",\"content\":\"Hi FAKE{\\\"reply\\\":\\\"x\\\"}\"}]";
        JsonNode t = Http.json(Http.post("/tokenize", "{\"model\":\"tiny-moe\"," + messages + "}"));
        JsonNode chat = Http.json(Http.post("/v1/chat/completions", "{\"model\":\"tiny-moe\"," + messages + "}"));
        assertArrayEquals(sent(router, chat), ids(t.get("tokens")), "the same ids as a chat request's prompt");
        String text = Http.json(Http.post("/detokenize", "{\"model\":\"tiny-moe\",\"tokens\":" + t.get("tokens") + "}"))
                .get("prompt").asText();
        assertTrue(text.endsWith("<|im_start|>assistant\n"), text);

        JsonNode bare = Http.json(Http.post("/tokenize", "{\"model\":\"tiny-moe\",\"add_generation_prompt\":false,"
                + messages + "}"));
        String bareText = model.tokenizer().decode(ids(bare.get("tokens")), false);
        assertTrue(bareText.endsWith("<|im_end|>\n"), bareText);
    }

    /** continue_final_message leaves the assistant's message open, in /tokenize and in chat completions alike. */
    @Test
    void continueFinalMessageLeavesTheLastMessageOpen() {
        String messages = "\"messages\":[{\"role\":\"user\",\"content\":\"Count FAKE{\\\"echo_prompt\\\":true}\"},"
                + "{\"role\":\"assistant\",\"content\":\"One, two, \"}]";
        String fields = "\"model\":\"tiny-moe\",\"add_generation_prompt\":false,\"continue_final_message\":true," + messages;
        JsonNode t = Http.json(Http.post("/tokenize", "{" + fields + "}"));
        String text = model.tokenizer().decode(ids(t.get("tokens")), false);
        // The template keeps the message's trailing space, so transformers keeps it too.
        assertTrue(text.endsWith("<|im_start|>assistant\nOne, two, "), text);

        HttpResponse<byte[]> chat = Http.post("/v1/chat/completions", "{" + fields + "}");
        assertEquals(200, chat.statusCode(), Http.text(chat));
        assertEquals(text, Http.json(chat).at("/choices/0/message/content").asText());

        assertError(Http.post("/tokenize", "{\"model\":\"tiny-moe\",\"continue_final_message\":true," + messages + "}"),
                400, "continue_final_message", null);
    }

    @Test
    void badInputIsAnOpenAiError() {
        assertError(Http.post("/tokenize", "{\"model\":\"tiny-moe\"}"), 400, "prompt", null);
        assertError(Http.post("/tokenize", "{\"model\":\"tiny-moe\",\"prompt\":5}"), 400, "prompt", null);
        assertError(Http.post("/tokenize", "{\"model\":\"tiny-moe\",\"prompt\":\"a\",\"return_token_strs\":true}"),
                400, "return_token_strs", null);
        assertError(Http.post("/tokenize", "{\"model\":\"other\",\"prompt\":\"a\"}"), 404, "model", "model_not_found");
        assertError(Http.post("/tokenize", "{\"prompt\":\"a\"}"), 400, "model", null);
        assertError(Http.post("/detokenize", "{\"model\":\"tiny-moe\"}"), 400, "tokens", null);
        assertError(Http.post("/detokenize", "{\"model\":\"tiny-moe\",\"tokens\":[1,-2]}"), 400, "tokens[1]", null);
        assertError(Http.post("/detokenize", "{\"model\":\"tiny-moe\",\"tokens\":[99999999]}"), 400, "tokens[0]", null);
        assertError(Http.post("/detokenize", "{\"model\":\"tiny-moe\",\"tokens\":[1,"), 400, null, null);
    }
}
