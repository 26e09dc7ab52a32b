package io.moeserve.gateway.openai;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.tokenizer.ChatMessage;
import io.moeserve.tokenizer.ToolCall;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A {@code POST /v1/chat/completions} body, validated.
 *
 * @param tools          OpenAI tool definitions, passed to the chat template as they came; null for none
 * @param templateKwargs vLLM's chat_template_kwargs (e.g. enable_thinking), extra template variables
 * @param toolChoice     "auto", "none", "required", or the name of the function that must be called
 * @param toolNamed      whether {@code toolChoice} names a function
 * @param template       vLLM's add_generation_prompt and continue_final_message
 */
public record ChatCompletionRequest(String model, List<ChatMessage> messages, List<Map<String, Object>> tools,
                             Map<String, Object> templateKwargs, GenerationOptions options, String toolChoice,
                             boolean toolNamed, TemplateOptions template) {

    private static final ObjectMapper MAPPER = new ObjectMapper();

    /** Parses and validates a request body; every problem is a 400 naming the parameter. */
    public static ChatCompletionRequest parse(byte[] body) {
        return parse(JsonBody.parse(body));
    }

    /** Also the messages form of /tokenize, which takes a chat request's fields. */
    static ChatCompletionRequest parse(ObjectNode body) {
        JsonFields f = new JsonFields(body, "");
        String model = f.requiredString("model");
        ArrayNode messages = f.array("messages").orElseThrow(() -> f.missing("messages"));
        if (messages.isEmpty()) {
            throw OpenAiException.invalid("messages", "Invalid 'messages': empty array. Expected an array with "
                    + "at least one message.");
        }
        List<ChatMessage> parsed = new ArrayList<>(messages.size());
        for (int i = 0; i < messages.size(); i++) parsed.add(message(messages.get(i), "messages[" + i + "]"));
        List<Map<String, Object>> tools = tools(f);
        Map<String, Object> kwargs = new LinkedHashMap<>(
                f.object("chat_template_kwargs").map(ChatCompletionRequest::toMap).orElse(Map.of()));
        // OpenAI's reasoning_effort reaches templates that read it (gpt-oss's "Reasoning: high"), as vLLM passes it;
        // chat_template_kwargs, being explicit, win.
        f.string("reasoning_effort").ifPresent(effort -> kwargs.putIfAbsent("reasoning_effort", effort));
        GenerationOptions options = GenerationOptions.parse(f, GenerationOptions.Endpoint.CHAT);
        JsonNode choice = f.raw("tool_choice");
        String toolChoice = tools == null ? "none" : "auto";
        boolean named = false;
        if (choice != null && choice.isTextual()) {
            toolChoice = choice.textValue();
            if (!List.of("auto", "none", "required").contains(toolChoice)) {
                throw OpenAiException.invalid("tool_choice", "Invalid 'tool_choice': '" + toolChoice + "'. Supported "
                        + "values are: 'none', 'auto', 'required' and {\"type\": \"function\", \"function\": {\"name\": ...}}.");
            }
        } else if (choice instanceof ObjectNode o) {
            JsonFields c = new JsonFields(o, "tool_choice.");
            ObjectNode function = c.object("function").orElseThrow(() -> c.missing("function"));
            toolChoice = new JsonFields(function, "tool_choice.function.").requiredString("name");
            named = true;
        } else if (choice != null && !choice.isNull()) {
            throw JsonFields.wrongTypeAt("tool_choice", "a string or an object", choice);
        }
        if (tools == null && (named || "required".equals(toolChoice))) {
            throw OpenAiException.invalid("tool_choice", "Invalid 'tool_choice': only allowed when 'tools' are specified.");
        }
        String wanted = toolChoice;
        if (named && tools.stream().noneMatch(t -> wanted.equals(functionName(t)))) {
            throw OpenAiException.invalid("tool_choice", "Invalid 'tool_choice': no function named '" + wanted
                    + "' in 'tools'.");
        }
        if (options.structuredOutput() != null && (named || "required".equals(toolChoice))) {
            throw OpenAiException.invalid("response_format", "'response_format' cannot be combined with a tool_choice "
                    + "that requires a tool call.");
        }
        return new ChatCompletionRequest(model, List.copyOf(parsed), tools, Collections.unmodifiableMap(kwargs), options,
                toolChoice, named, TemplateOptions.parse(f));
    }

    /** A tool definition's function name. */
    @SuppressWarnings("unchecked")
    public static String functionName(Map<String, Object> tool) {
        return String.valueOf(((Map<String, Object>) tool.get("function")).get("name"));
    }

    /** Whether the output must be a tool call: tool_choice "required" or a named function. */
    public boolean requiresToolCall() {
        return toolNamed || "required".equals(toolChoice);
    }

    /**
     * The tools the chat template renders: none with tool_choice "none", as OpenAI's "the model will not call any
     * tool" and vLLM's --exclude-tools-when-tool-choice-none read it, so that the model is not invited to.
     */
    public List<Map<String, Object>> renderedTools() {
        return "none".equals(toolChoice) ? null : tools;
    }

    private static ChatMessage message(JsonNode node, String param) {
        if (!(node instanceof ObjectNode object)) throw JsonFields.wrongTypeAt(param, "an object", node);
        JsonFields f = new JsonFields(object, param + ".");
        String role = f.requiredString("role");
        List<ToolCall> toolCalls = "assistant".equals(role) ? toolCalls(f) : List.of();
        String content = content(f, role, !toolCalls.isEmpty());
        return switch (role) {
            // OpenAI's newer name for the system role; templates know only "system".
            case "system", "developer" -> ChatMessage.system(content);
            case "user" -> ChatMessage.user(content);
            // A content left out stays out of the template's dict, null stays None (see ChatMessage).
            case "assistant" -> new ChatMessage("assistant", content, toolCalls,
                    f.string("reasoning_content").orElse(null), null, null, f.absent("content"));
            case "tool" -> ChatMessage.tool(content, f.string("tool_call_id").orElse(null),
                    f.string("name").orElse(null));
            default -> throw OpenAiException.invalid(f.param("role"), "Invalid value for '" + f.param("role")
                    + "': '" + role + "'. Supported values are: 'system', 'developer', 'user', 'assistant' and 'tool'.");
        };
    }

    /** A string, or an array of text parts joined by newlines (vLLM's "string" content format). */
    private static String content(JsonFields f, String role, boolean hasToolCalls) {
        JsonNode v = f.raw("content");
        if (v == null) {
            if ("assistant".equals(role) && hasToolCalls) return null;
            throw f.missing("content");
        }
        if (v.isTextual()) return JsonFields.text(v.textValue(), f.param("content"));
        if (!(v instanceof ArrayNode parts)) throw f.wrongType("content", "a string or an array of content parts", v);
        StringBuilder text = new StringBuilder();
        for (int j = 0; j < parts.size(); j++) {
            String partParam = f.param("content") + "[" + j + "]";
            JsonNode part = parts.get(j);
            if (!(part instanceof ObjectNode partObject)) throw JsonFields.wrongTypeAt(partParam, "an object", part);
            JsonFields p = new JsonFields(partObject, partParam + ".");
            String type = p.requiredString("type");
            if (!"text".equals(type)) {
                throw OpenAiException.invalid(p.param("type"), "Content parts of type '" + type
                        + "' are not supported by this model; only 'text' is.");
            }
            if (j > 0) text.append('\n');
            text.append(p.requiredString("text"));
        }
        return text.toString();
    }

    private static List<ToolCall> toolCalls(JsonFields f) {
        Optional<ArrayNode> calls = f.array("tool_calls");
        if (calls.isEmpty()) return List.of();
        List<ToolCall> out = new ArrayList<>();
        for (int i = 0; i < calls.get().size(); i++) {
            String param = f.param("tool_calls") + "[" + i + "]";
            JsonNode call = calls.get().get(i);
            if (!(call instanceof ObjectNode callObject)) throw JsonFields.wrongTypeAt(param, "an object", call);
            JsonFields c = new JsonFields(callObject, param + ".");
            ObjectNode function = c.object("function").orElseThrow(() -> c.missing("function"));
            JsonFields fn = new JsonFields(function, param + ".function.");
            String name = fn.requiredString("name");
            JsonNode arguments = fn.raw("arguments");
            Object args;
            if (arguments == null) {
                args = "{}";
            } else if (arguments.isTextual()) {
                args = argumentsObject(arguments.textValue());
            } else if (arguments instanceof ObjectNode o) {
                args = toMap(o);
            } else {
                throw fn.wrongType("arguments", "a JSON string", arguments);
            }
            out.add(new ToolCall(c.string("id").orElse(null), name, args));
        }
        return out;
    }

    /**
     * OpenAI sends a call's arguments as JSON text, and chat templates expect the object (gpt-oss's writes it with
     * tojson, and would quote the text as one string, which is not what the model wrote): text that is a JSON
     * object reaches the template as the object, as vLLM passes it. Anything else stays text.
     */
    private static Object argumentsObject(String text) {
        try {
            return MAPPER.reader().with(DeserializationFeature.FAIL_ON_TRAILING_TOKENS).readTree(text)
                    instanceof ObjectNode o ? toMap(o) : text;
        } catch (JsonProcessingException e) {
            return text;
        }
    }

    private static List<Map<String, Object>> tools(JsonFields f) {
        Optional<ArrayNode> tools = f.array("tools");
        if (tools.isEmpty() || tools.get().isEmpty()) return null;
        List<Map<String, Object>> out = new ArrayList<>();
        for (int i = 0; i < tools.get().size(); i++) {
            String param = "tools[" + i + "]";
            JsonNode tool = tools.get().get(i);
            if (!(tool instanceof ObjectNode toolObject)) throw JsonFields.wrongTypeAt(param, "an object", tool);
            JsonFields t = new JsonFields(toolObject, param + ".");
            String type = t.string("type").orElse("function");
            if (!"function".equals(type)) {
                throw OpenAiException.invalid(t.param("type"), "Only tools of type 'function' are supported.");
            }
            ObjectNode function = t.object("function").orElseThrow(() -> t.missing("function"));
            new JsonFields(function, param + ".function.").requiredString("name");
            out.add(toMap(toolObject));
        }
        return out;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> toMap(ObjectNode node) {
        return MAPPER.convertValue(node, Map.class);
    }
}
