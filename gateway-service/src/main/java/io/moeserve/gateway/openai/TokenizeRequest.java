package io.moeserve.gateway.openai;

import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * A vLLM {@code POST /tokenize} body: either {@code prompt} (text, encoded with the tokenizer's special tokens unless
 * add_special_tokens is false) or {@code messages} (rendered by the chat template as a chat request would be, then
 * encoded without special tokens unless add_special_tokens is true, since templates write BOS themselves).
 *
 * @param prompt the text, or null when {@code chat} is given
 * @param chat   the messages, tools and template settings, or null when {@code prompt} is given
 */
public record TokenizeRequest(String model, String prompt, ChatCompletionRequest chat, boolean addSpecialTokens) {

    public static TokenizeRequest parse(byte[] body) {
        ObjectNode node = JsonBody.parse(body);
        JsonFields f = new JsonFields(node, "");
        String model = f.requiredString("model");
        // vLLM's token_strs are the vocabulary's spellings (Ġthe), which this tokenizer does not keep by id.
        if (f.bool("return_token_strs", false)) {
            throw OpenAiException.invalid("return_token_strs", "'return_token_strs' is not supported by this server.");
        }
        if (f.has("messages")) {
            if (f.has("prompt")) {
                throw OpenAiException.invalid("prompt", "Give either 'prompt' or 'messages', not both.");
            }
            ChatCompletionRequest chat = ChatCompletionRequest.parse(node);
            return new TokenizeRequest(model, null, chat, f.bool("add_special_tokens", false));
        }
        String prompt = f.string("prompt").orElseThrow(() -> OpenAiException.invalid("prompt",
                "Missing required parameter: 'prompt' (or 'messages')."));
        return new TokenizeRequest(model, prompt, null, f.bool("add_special_tokens", true));
    }

    /** A vLLM {@code POST /detokenize} body. */
    public record Detokenize(String model, int[] tokens) {

        public static Detokenize parse(byte[] body) {
            JsonFields f = new JsonFields(JsonBody.parse(body), "");
            String model = f.requiredString("model");
            var tokens = f.array("tokens").orElseThrow(() -> f.missing("tokens"));
            int[] ids = new int[tokens.size()];
            for (int i = 0; i < ids.length; i++) {
                var v = tokens.get(i);
                if (!v.isIntegralNumber() || !v.canConvertToInt() || v.intValue() < 0) {
                    throw JsonFields.wrongTypeAt("tokens[" + i + "]", "a non-negative token id", v);
                }
                ids[i] = v.intValue();
            }
            return new Detokenize(model, ids);
        }
    }
}
