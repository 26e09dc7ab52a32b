package io.moeserve.gateway.openai;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalLong;

/**
 * What to generate and how, from the parameters chat and text completions share (OpenAI's names and ranges,
 * plus vLLM's top_k, min_p, repetition_penalty, stop_token_ids and ignore_eos), and this server's extension
 * {@code moe_skip_threshold}.
 *
 * @param maxTokens    max_completion_tokens (it wins; on completions too, as vLLM takes it) or max_tokens, if given;
 *                     at least 1
 * @param maxTokensParam which of the two it came from, for errors
 * @param logprobs     -1: none; otherwise how many most likely alternatives to return per token (0 to 20)
 * @param stop         up to 4 non-empty stop strings
 * @param stopTokenIds token ids that end generation besides the model's end-of-sequence ids
 * @param skipThreshold moe_skip_threshold, if given: the request's dynamic expert skipping threshold in [0, 1]
 *                      (0 = off), instead of the router's setting
 * @param structuredOutput what response_format (or a required tool call) holds the output to; null: nothing
 */
public record GenerationOptions(double temperature, double topP, int topK, double minP, OptionalDouble repetitionPenalty,
                         double presencePenalty, double frequencyPenalty, OptionalLong seed, int n,
                         List<String> stop, int[] stopTokenIds, boolean ignoreEos, OptionalLong maxTokens,
                         String maxTokensParam, int logprobs, boolean stream, boolean includeUsage,
                         OptionalDouble skipThreshold, StructuredOutput structuredOutput) {

    static final int MAX_N = 128;
    static final int MAX_STOP = 4;
    static final int MAX_TOP_LOGPROBS = 20;

    public enum Endpoint { CHAT, COMPLETION }

    static GenerationOptions parse(JsonFields f, Endpoint endpoint) {
        double temperature = f.number("temperature", 0, 2, 1);
        double topP = f.number("top_p", 0, 1, 1);
        if (topP == 0) {
            throw OpenAiException.invalid("top_p", "Invalid 'top_p': expected a value in (0, 1], but got 0 instead.");
        }
        int topK = (int) f.integer("top_k", -1, Integer.MAX_VALUE, 0);
        double minP = f.number("min_p", 0, 1, 0);
        OptionalDouble repetition = f.number("repetition_penalty");
        if (repetition.isPresent()) f.number("repetition_penalty", Double.MIN_VALUE, 10, 1);
        double presence = f.number("presence_penalty", -2, 2, 0);
        double frequency = f.number("frequency_penalty", -2, 2, 0);
        OptionalLong seed = f.exactLong("seed");
        int n = (int) f.integer("n", 1, MAX_N, 1);

        List<String> stop = stops(f);
        int[] stopTokenIds = stopTokenIds(f);
        boolean ignoreEos = f.bool("ignore_eos", false);

        OptionalLong maxTokens = f.integer("max_tokens");
        String maxTokensParam = "max_tokens";
        if (f.has("max_completion_tokens")) {
            maxTokens = f.integer("max_completion_tokens");
            maxTokensParam = "max_completion_tokens";
        }
        if (maxTokens.isPresent() && maxTokens.getAsLong() < 1) {
            throw OpenAiException.invalid(maxTokensParam, "Invalid '" + maxTokensParam + "': integer below minimum "
                    + "value. Expected a value >= 1, but got " + maxTokens.getAsLong() + " instead.");
        }

        int logprobs = endpoint == Endpoint.CHAT ? chatLogprobs(f) : (int) f.integer("logprobs", 0, MAX_TOP_LOGPROBS, -1);

        boolean stream = f.bool("stream", false);
        boolean includeUsage = false;
        Optional<ObjectNode> streamOptions = f.object("stream_options");
        if (streamOptions.isPresent()) {
            if (!stream) {
                throw OpenAiException.invalid("stream_options",
                        "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
            }
            includeUsage = new JsonFields(streamOptions.get(), "stream_options.").bool("include_usage", false);
        }

        OptionalDouble skipThreshold = f.number("moe_skip_threshold");
        if (skipThreshold.isPresent()) f.number("moe_skip_threshold", 0, 1, 0);

        unsupported(f, endpoint);
        return new GenerationOptions(temperature, topP, topK < 0 ? 0 : topK, minP, repetition, presence, frequency,
                seed, n, stop, stopTokenIds, ignoreEos, maxTokens, maxTokensParam, logprobs, stream, includeUsage, skipThreshold,
                responseFormat(f));
    }

    /** The same options holding the output to {@code s} (a required or named tool call). */
    public GenerationOptions withStructuredOutput(StructuredOutput s) {
        return new GenerationOptions(temperature, topP, topK, minP, repetitionPenalty, presencePenalty, frequencyPenalty,
                seed, n, stop, stopTokenIds, ignoreEos, maxTokens, maxTokensParam, logprobs, stream, includeUsage, skipThreshold, s);
    }

    /**
     * response_format: text (nothing), json_object (any JSON object) or json_schema (its {@code schema}; strict or
     * not, the output is held to it, which strict mode promises and non-strict mode allows).
     */
    private static StructuredOutput responseFormat(JsonFields f) {
        Optional<ObjectNode> format = f.object("response_format");
        if (format.isEmpty()) return null;
        JsonFields r = new JsonFields(format.get(), "response_format.");
        String type = r.requiredString("type");
        switch (type) {
            case "text" -> {
                return null;
            }
            case "json_object" -> {
                return StructuredOutput.JSON_OBJECT;
            }
            case "json_schema" -> {
                ObjectNode js = r.object("json_schema").orElseThrow(() -> r.missing("json_schema"));
                JsonFields j = new JsonFields(js, "response_format.json_schema.");
                j.requiredString("name");
                JsonNode schema = j.raw("schema");
                if (schema == null) throw j.missing("schema");
                if (!schema.isObject()) throw j.wrongType("schema", "an object", schema);
                return new StructuredOutput(schema.toString(), "", "");
            }
            default -> throw OpenAiException.invalid("response_format.type", "Invalid 'response_format.type': '" + type
                    + "'. Supported values are: 'text', 'json_object' and 'json_schema'.");
        }
    }

    private static int chatLogprobs(JsonFields f) {
        boolean logprobs = f.bool("logprobs", false);
        long top = f.integer("top_logprobs", 0, MAX_TOP_LOGPROBS, -1);
        if (top >= 0 && !logprobs) {
            throw OpenAiException.invalid("top_logprobs",
                    "Invalid 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.");
        }
        return logprobs ? (int) Math.max(top, 0) : -1;
    }

    private static List<String> stops(JsonFields f) {
        JsonNode v = f.raw("stop");
        List<String> out = new ArrayList<>();
        if (v == null) return List.of();
        if (v.isTextual()) {
            out.add(JsonFields.text(v.textValue(), "stop"));
        } else if (v instanceof ArrayNode a) {
            if (a.size() > MAX_STOP) {
                throw OpenAiException.invalid("stop", "Invalid 'stop': array too long. Expected an array with at most "
                        + MAX_STOP + " elements, but got " + a.size() + " instead.");
            }
            for (int i = 0; i < a.size(); i++) {
                JsonNode s = a.get(i);
                if (!s.isTextual()) throw JsonFields.wrongTypeAt("stop[" + i + "]", "a string", s);
                out.add(JsonFields.text(s.textValue(), "stop[" + i + "]"));
            }
        } else {
            throw f.wrongType("stop", "a string or an array of strings", v);
        }
        // An empty stop string would match before any output; OpenAI-compatible servers ignore it.
        out.removeIf(String::isEmpty);
        return List.copyOf(out);
    }

    private static int[] stopTokenIds(JsonFields f) {
        Optional<ArrayNode> a = f.array("stop_token_ids");
        if (a.isEmpty()) return new int[0];
        int[] ids = new int[a.get().size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode v = a.get().get(i);
            if (!v.isIntegralNumber() || !v.canConvertToInt() || v.intValue() < 0) {
                throw JsonFields.wrongTypeAt("stop_token_ids[" + i + "]", "a non-negative token id", v);
            }
            ids[i] = v.intValue();
        }
        return ids;
    }

    /**
     * vLLM's sampling extras that clients send (LangChain's VLLMOpenAI, vLLM's own examples): each is refused when
     * set to anything but what this server does anyway, since ignoring it would change the answer silently.
     * continue_final_message is honoured on chat (see TemplateOptions); on completions it has no message to continue.
     */
    private static void vllmExtras(JsonFields f, Endpoint endpoint) {
        if (f.integer("min_tokens", 0, Integer.MAX_VALUE, 0) > 0) {
            throw OpenAiException.invalid("min_tokens", "'min_tokens' is not supported by this server.");
        }
        if (f.bool("include_stop_str_in_output", false)) {
            throw OpenAiException.invalid("include_stop_str_in_output", "'include_stop_str_in_output' is not supported "
                    + "by this server; stop strings are always left out of the output.");
        }
        if (!f.bool("skip_special_tokens", true)) {
            throw OpenAiException.invalid("skip_special_tokens", "'skip_special_tokens': false is not supported by "
                    + "this server; special tokens are always left out of the output.");
        }
        if (endpoint == Endpoint.COMPLETION && f.bool("continue_final_message", false)) {
            throw OpenAiException.invalid("continue_final_message", "'continue_final_message' applies to chat "
                    + "completions only.");
        }
    }

    /** Parameters whose meaning we cannot honour: refusing is better than silently ignoring them. */
    private static void unsupported(JsonFields f, Endpoint endpoint) {
        Optional<ObjectNode> bias = f.object("logit_bias");
        if (bias.isPresent() && !bias.get().isEmpty()) {
            throw OpenAiException.invalid("logit_bias", "'logit_bias' is not supported by this server.");
        }
        vllmExtras(f, endpoint);
        if (endpoint == Endpoint.COMPLETION) {
            Optional<String> suffix = f.string("suffix");
            if (suffix.isPresent() && !suffix.get().isEmpty()) {
                throw OpenAiException.invalid("suffix", "'suffix' is not supported by this server.");
            }
            if (f.has("best_of")) {
                long bestOf = f.integer("best_of", 1, MAX_N, 1);
                long n = f.integer("n", 1, MAX_N, 1);
                if (bestOf != n && bestOf != 1) {
                    throw OpenAiException.invalid("best_of", "'best_of' other than 1 or n is not supported by "
                            + "this server.");
                }
            }
        } else {
            if (f.has("functions") || f.has("function_call")) {
                throw OpenAiException.invalid(f.has("functions") ? "functions" : "function_call",
                        "The deprecated 'functions' / 'function_call' parameters are not supported; use 'tools'.");
            }
        }
    }
}
