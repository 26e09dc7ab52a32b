package io.moeserve.gateway.generation;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.gateway.GatewaySettings;
import io.moeserve.gateway.ServedModel;
import io.moeserve.gateway.openai.ChatCompletionRequest;
import io.moeserve.gateway.openai.CompletionIdentity;
import io.moeserve.gateway.openai.GenerationOptions;
import io.moeserve.gateway.openai.OpenAiException;
import io.moeserve.gateway.openai.StructuredOutput;
import io.moeserve.gateway.router.RouterClient;
import io.moeserve.proto.ModelSettings;
import io.moeserve.proto.router.v1.ModelDescription;
import io.moeserve.tokenizer.ChatMessage;
import io.moeserve.tokenizer.HfTokenizer;
import io.quarkus.runtime.Startup;
import jakarta.annotation.PostConstruct;
import jakarta.inject.Inject;
import jakarta.inject.Singleton;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Checks encoded prompts against the model's limits and fixes each prompt's token budget: what the router would
 * refuse (OUT_OF_RANGE, ids outside the vocabulary) is refused here first, with OpenAI's messages. Created at
 * startup, where it decides how chat output is read ({@code moe.gateway.output-parser}), so that a setting the
 * tokenizer cannot honour stops the gateway from starting instead of failing every request.
 */
@Startup
@Singleton
public class GenerationPlanner {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** OpenAI's documented default for the legacy completions endpoint. */
    static final int COMPLETIONS_DEFAULT_MAX_TOKENS = 16;
    /** When the router reports no max_context and the tokenizer has no model_max_length. */
    static final int FALLBACK_CONTEXT = 32768;
    /** What Llama 3.1/3.2/3.3's templates tell the model when the request has tools (JSON based tool calling). */
    static final String LLAMA3_TOOL_INSTRUCTION = "respond with a JSON for a function call";

    @Inject
    ServedModel model;

    @Inject
    ModelSettings modelSettings;

    /** How chat output is parsed, null for plain text; decided at startup. */
    private OutputFormat output;

    @Inject
    RouterClient router;

    @Inject
    GatewaySettings settings;

    /**
     * @param promptParams the parameter each prompt came from (messages, prompt, prompt[2]), for errors
     */
    public GenerationPlan plan(GenerationOptions.Endpoint endpoint, List<int[]> prompts, List<String> promptParams,
                               GenerationOptions options) {
        return plan(endpoint, prompts, promptParams, options, false);
    }

    /**
     * @param toolsSent whether the request sent tools: formats whose calls look like plain JSON (Llama 3.x's) read
     *                  the output only then
     */
    public GenerationPlan plan(GenerationOptions.Endpoint endpoint, List<int[]> prompts, List<String> promptParams,
                               GenerationOptions options, boolean toolsSent) {
        ModelDescription d = router.description();
        int context = contextLength(d);
        int maxPrompt = Math.min(context, settings.maxPromptTokens().orElse(context));
        int vocab = d.getVocabSize() > 0 ? d.getVocabSize() : model.tokenizer().vocabSize();
        String what = endpoint == GenerationOptions.Endpoint.CHAT ? "messages" : "prompt";
        String maxParam = options.maxTokensParam();

        int[] maxNew = new int[prompts.size()];
        for (int p = 0; p < prompts.size(); p++) {
            int[] ids = prompts.get(p);
            String param = promptParams.get(p);
            if (ids.length == 0) {
                throw OpenAiException.invalid(param, "The " + what + " encode to no tokens; the prompt must not be empty.");
            }
            for (int i = 0; i < ids.length; i++) {
                if (ids[i] >= vocab) {
                    throw OpenAiException.invalid(param, "Token id " + ids[i] + " at position " + i
                            + " is outside the model's vocabulary of " + vocab + ".");
                }
            }
            if (ids.length > maxPrompt) {
                throw OpenAiException.invalid(param, "context_length_exceeded", "This model's maximum prompt "
                        + "length is " + maxPrompt + " tokens. However, your " + what + " resulted in " + ids.length
                        + " tokens. Please reduce the length of the " + what + ".");
            }
            int room = context - ids.length;
            if (options.maxTokens().isPresent()) {
                long asked = options.maxTokens().getAsLong();
                if (asked > room) {
                    throw OpenAiException.invalid(maxParam, "context_length_exceeded", "This model's maximum "
                            + "context length is " + context + " tokens. However, you requested "
                            + (asked > Integer.MAX_VALUE ? "more than " + Integer.MAX_VALUE : ids.length + asked)
                            + " tokens (" + ids.length + " in the " + what + ", " + asked + " in the completion). "
                            + "Please reduce the length of the " + what + " or completion.");
                }
                maxNew[p] = (int) asked;
            } else if (room < 1) {
                throw OpenAiException.invalid(param, "context_length_exceeded", "This model's maximum context "
                        + "length is " + context + " tokens, and your " + what + " resulted in " + ids.length
                        + " tokens, which leaves no room for a completion.");
            } else {
                maxNew[p] = endpoint == GenerationOptions.Endpoint.CHAT ? room
                        : Math.min(room, COMPLETIONS_DEFAULT_MAX_TOKENS);
            }
        }
        Set<Integer> end = new LinkedHashSet<>(d.getEosTokenIdsList());
        for (int i = 0; i < options.stopTokenIds().length; i++) {
            int id = options.stopTokenIds()[i];
            if (id >= vocab) {
                throw OpenAiException.invalid("stop_token_ids[" + i + "]", "Token id " + id
                        + " is outside the model's vocabulary of " + vocab + ".");
            }
            end.add(id);
        }
        OutputFormat output = endpoint == GenerationOptions.Endpoint.CHAT ? forRequest(this.output, toolsSent) : null;
        if (output != null) {
            for (int id : output.turnEnds()) end.add(id);
        }
        int[] endIds = end.stream().mapToInt(Integer::intValue).toArray();
        String prefix = endpoint == GenerationOptions.Endpoint.CHAT ? "chatcmpl-" : "cmpl-";
        CompletionIdentity identity = new CompletionIdentity(prefix + randomId(), System.currentTimeMillis() / 1000,
                model.id(), endpoint);
        return new GenerationPlan(identity, List.copyOf(prompts), maxNew, options, endIds, settings.requestTimeout(),
                output, Math.max(1, settings.router().maxAttempts()), settings.migration().enabled());
    }

    /** The model's context: the router's max_context, else the tokenizer's model_max_length, else 32768. */
    public int contextLength() {
        return contextLength(router.description());
    }

    private int contextLength(ModelDescription d) {
        return d.getMaxContext() > 0 ? d.getMaxContext()
                : (int) Math.min(Integer.MAX_VALUE, model.tokenizer().config().modelMaxLength().orElse(FALLBACK_CONTEXT));
    }

    /**
     * The messages as the chat template should see them. Qwen's templates concatenate an assistant's content as
     * a string, and Qwen3's fails on None ({@code content.lstrip}), in transformers too; but the OpenAI SDKs send
     * a message that only called tools back with {@code "content": null}. So with Qwen's format, a null or left
     * out assistant content is "", as vLLM passes it. Other templates get the messages as sent: DeepSeek-V3's
     * renders a tool call only when the content is None.
     */
    public List<ChatMessage> templateMessages(List<ChatMessage> messages) {
        if (!(output instanceof TaggedOutputParser.Format f) || f.family() != TaggedOutputParser.Family.QWEN) {
            return messages;
        }
        List<ChatMessage> out = new ArrayList<>(messages.size());
        for (ChatMessage m : messages) {
            out.add("assistant".equals(m.role()) && m.content() == null ? new ChatMessage(m.role(), "", m.toolCalls(),
                    m.reasoningContent(), m.toolCallId(), m.name()) : m);
        }
        return out;
    }

    /** The format a chat request's output is read with: none for Llama's plain-JSON calls when it sent no tools. */
    static OutputFormat forRequest(OutputFormat output, boolean toolsSent) {
        return output != null && output.onlyWithTools() && !toolsSent ? null : output;
    }

    @PostConstruct
    void decideOutputParser() {
        output = outputFormat(settings.outputParser(), settings.reasoning(), model.tokenizer(),
                modelSettings.directory().toString());
    }

    /**
     * How chat output is read. {@code auto} goes by the markers the chat template writes: {@code <|channel|>}
     * (with harmony's tokens in the tokenizer) is harmony, {@code <tool_call>} Qwen's Hermes-style calls,
     * {@code tool▁calls▁begin} DeepSeek's, {@code [TOOL_CALLS]} Mistral's, {@code <|python_tag|>} or Llama 3.1's JSON
     * tool instruction Llama 3.x's JSON calls; anything else is plain text. Think blocks are reasoning when
     * {@code reasoning} is on (Qwen and DeepSeek; harmony's analysis channel always is).
     *
     * @throws IllegalStateException {@code harmony} with a tokenizer that lacks some of the tokens
     */
    /**
     * A chat request's options, held to a tool call when tool_choice is "required" or names a function: constrained
     * decoding to the model's own call format around {"name": one of the tools (or the named one), arguments
     * matching that function's parameters schema}, which the format's parser then turns into tool_calls. Exactly
     * one call is generated. Supported for the formats whose calls are plain text around JSON: Qwen's Hermes-style
     * {@code <tool_call>} and Llama 3.x's JSON; the others (harmony, DeepSeek-V3, Mistral, whose call markers are
     * special tokens or channels the JSON grammar does not spell) get a 400 saying so.
     */
    public GenerationOptions chatOptions(ChatCompletionRequest request) {
        GenerationOptions options = request.options();
        if (!request.requiresToolCall()) return options;
        String argumentsKey;
        String prefix;
        String suffix;
        if (output instanceof TaggedOutputParser.Format f && f.family() == TaggedOutputParser.Family.QWEN) {
            argumentsKey = "arguments";
            prefix = TaggedOutputParser.QWEN_CALL + "\n";
            suffix = "\n" + TaggedOutputParser.QWEN_CALL_END;
        } else if (output instanceof JsonToolCallParser.Format f && f.family() == JsonToolCallParser.Family.LLAMA3_JSON) {
            argumentsKey = "parameters";
            prefix = "";
            suffix = "";
        } else {
            throw OpenAiException.invalid("tool_choice", "tool_choice 'required' and named functions are supported for "
                    + "Qwen's <tool_call> and Llama 3.x's JSON tool-call formats; this model's output is read as "
                    + (output == null ? "plain text" : output.getClass().getEnclosingClass().getSimpleName()) + ".");
        }
        ArrayNode calls = JSON.createArrayNode();
        for (Map<String, Object> tool : request.tools()) {
            String name = ChatCompletionRequest.functionName(tool);
            if (request.toolNamed() && !name.equals(request.toolChoice())) continue;
            Object parameters = ((Map<?, ?>) tool.get("function")).get("parameters");
            ObjectNode call = calls.addObject().put("type", "object").put("additionalProperties", false);
            ObjectNode properties = call.putObject("properties");
            properties.putObject("name").put("const", name);
            if (parameters instanceof Map<?, ?> p && !p.isEmpty()) properties.set(argumentsKey, JSON.valueToTree(p));
            else properties.putObject(argumentsKey).put("type", "object");
            call.putArray("required").add("name").add(argumentsKey);
        }
        ObjectNode schema = JSON.createObjectNode();
        if (calls.size() == 1) schema = (ObjectNode) calls.get(0);
        else schema.set("anyOf", calls);
        return options.withStructuredOutput(new StructuredOutput(schema.toString(), prefix, suffix));
    }

    static OutputFormat outputFormat(GatewaySettings.OutputParser setting, boolean reasoning, HfTokenizer tokenizer,
                                     String checkpoint) {
        HarmonyParser.Tokens harmony = harmonyTokens(setting, tokenizer, checkpoint);
        if (harmony != null) return harmony;
        return switch (setting) {
            case QWEN -> new TaggedOutputParser.Format(TaggedOutputParser.Family.QWEN, reasoning);
            case DEEPSEEK -> new TaggedOutputParser.Format(TaggedOutputParser.Family.DEEPSEEK, reasoning);
            case MISTRAL -> JsonToolCallParser.Format.of(JsonToolCallParser.Family.MISTRAL, tokenizer);
            case LLAMA3_JSON -> JsonToolCallParser.Format.of(JsonToolCallParser.Family.LLAMA3_JSON, tokenizer);
            case AUTO -> {
                String template = tokenizer.chatTemplateSource().orElse("");
                if (template.contains(TaggedOutputParser.QWEN_CALL)) {
                    yield new TaggedOutputParser.Format(TaggedOutputParser.Family.QWEN, reasoning);
                }
                if (template.contains("tool▁calls▁begin")) {
                    yield new TaggedOutputParser.Format(TaggedOutputParser.Family.DEEPSEEK, reasoning);
                }
                if (template.contains(JsonToolCallParser.MISTRAL_CALLS)) {
                    yield JsonToolCallParser.Format.of(JsonToolCallParser.Family.MISTRAL, tokenizer);
                }
                if (template.contains(JsonToolCallParser.PYTHON_TAG) || template.contains(LLAMA3_TOOL_INSTRUCTION)) {
                    yield JsonToolCallParser.Format.of(JsonToolCallParser.Family.LLAMA3_JSON, tokenizer);
                }
                yield null;
            }
            default -> null;
        };
    }

    /**
     * How chat output is read: as harmony with {@code harmony}, or with {@code auto} when the chat template writes
     * {@code <|channel|>} and the tokenizer has every harmony special token (gpt-oss); null for plain text.
     *
     * @throws IllegalStateException {@code harmony} with a tokenizer that lacks some of the tokens
     */
    static HarmonyParser.Tokens harmonyTokens(GatewaySettings.OutputParser setting, HfTokenizer tokenizer,
                                              String checkpoint) {
        Optional<HarmonyParser.Tokens> tokens = HarmonyParser.Tokens.of(tokenizer);
        return switch (setting) {
            case NONE, QWEN, DEEPSEEK, MISTRAL, LLAMA3_JSON -> null;
            case HARMONY -> tokens.orElseThrow(() -> new IllegalStateException("moe.gateway.output-parser is harmony, "
                    + "but the tokenizer of " + checkpoint + " lacks harmony's special tokens "
                    + HarmonyParser.Tokens.missing(tokenizer) + "; serve a gpt-oss tokenizer, or set it to auto or none"));
            case AUTO -> tokens.filter(t -> tokenizer.chatTemplateSource()
                    .map(source -> source.contains("<|channel|>")).orElse(false)).orElse(null);
        };
    }

    private static String randomId() {
        ThreadLocalRandom r = ThreadLocalRandom.current();
        return Long.toHexString(r.nextLong() | Long.MIN_VALUE).substring(1)
                + Long.toHexString(r.nextLong() | Long.MIN_VALUE).substring(1);
    }
}
