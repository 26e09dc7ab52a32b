package io.moeserve.gateway.openai;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.List;

/**
 * A {@code POST /v1/completions} body, validated.
 *
 * @param prompts one entry per prompt (a string, an array of strings, an array of token ids or an array of such
 *                arrays); each gets n choices
 * @param echo    each choice's text begins with its prompt's text (OpenAI's and vLLM's echo)
 */
public record CompletionRequest(String model, List<Prompt> prompts, GenerationOptions options, boolean echo) {

    /** One prompt: text to encode, or token ids to use as they are. */
    public record Prompt(String text, int[] tokenIds) {}

    /** Parses and validates a request body; every problem is a 400 naming the parameter. */
    public static CompletionRequest parse(byte[] body) {
        return parse(JsonBody.parse(body));
    }

    private static CompletionRequest parse(ObjectNode body) {
        JsonFields f = new JsonFields(body, "");
        String model = f.requiredString("model");
        List<Prompt> prompts = prompts(f);
        GenerationOptions options = GenerationOptions.parse(f, GenerationOptions.Endpoint.COMPLETION);
        if ((long) prompts.size() * options.n() > GenerationOptions.MAX_N) {
            throw OpenAiException.invalid("prompt", "Too many completions: " + prompts.size() + " prompts × n="
                    + options.n() + " exceeds " + GenerationOptions.MAX_N + " choices per request.");
        }
        boolean echo = f.bool("echo", false);
        if (echo && options.logprobs() >= 0) {
            // OpenAI and vLLM then return the prompt tokens' logprobs too, which would take the router a pass of the
            // prompt's logits it does not make; refusing beats answering with logprobs for part of the text.
            throw OpenAiException.invalid("echo", "'echo' together with 'logprobs' is not supported by this server: it does not "
                    + "compute the prompt tokens' logprobs. Leave out one of them.");
        }
        return new CompletionRequest(model, prompts, options, echo);
    }

    private static List<Prompt> prompts(JsonFields f) {
        JsonNode v = f.raw("prompt");
        if (v == null) throw f.missing("prompt");
        if (v.isTextual()) return List.of(new Prompt(JsonFields.text(v.textValue(), "prompt"), null));
        if (!(v instanceof ArrayNode a)) {
            throw f.wrongType("prompt", "a string, an array of strings or an array of token ids", v);
        }
        if (a.isEmpty()) throw OpenAiException.invalid("prompt", "Invalid 'prompt': empty array.");
        JsonNode first = a.get(0);
        List<Prompt> out = new ArrayList<>();
        if (first.isTextual()) {
            for (int i = 0; i < a.size(); i++) {
                JsonNode s = a.get(i);
                if (!s.isTextual()) throw JsonFields.wrongTypeAt("prompt[" + i + "]", "a string", s);
                out.add(new Prompt(JsonFields.text(s.textValue(), "prompt[" + i + "]"), null));
            }
        } else if (first.isNumber()) {
            out.add(new Prompt(null, tokenIds(a, "prompt")));
        } else if (first.isArray()) {
            for (int i = 0; i < a.size(); i++) {
                JsonNode ids = a.get(i);
                if (!(ids instanceof ArrayNode idArray)) {
                    throw JsonFields.wrongTypeAt("prompt[" + i + "]", "an array of token ids", ids);
                }
                if (idArray.isEmpty()) throw OpenAiException.invalid("prompt[" + i + "]", "Invalid 'prompt[" + i
                        + "]': empty array.");
                out.add(new Prompt(null, tokenIds(idArray, "prompt[" + i + "]")));
            }
        } else {
            throw JsonFields.wrongTypeAt("prompt[0]", "a string, a token id or an array of token ids", first);
        }
        return List.copyOf(out);
    }

    private static int[] tokenIds(ArrayNode a, String param) {
        int[] ids = new int[a.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode v = a.get(i);
            if (!v.isIntegralNumber() || !v.canConvertToInt() || v.intValue() < 0) {
                throw JsonFields.wrongTypeAt(param + "[" + i + "]", "a non-negative token id", v);
            }
            ids[i] = v.intValue();
        }
        return ids;
    }
}
