package io.moeserve.tokenizer;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * One function call an assistant turn made, as OpenAI's API and Hugging Face chat templates spell it:
 * {@code {"id": ..., "type": "function", "function": {"name": ..., "arguments": ...}}}.
 *
 * @param id        the call's id, echoed by the tool message's {@code toolCallId}; may be null
 * @param name      the function's name
 * @param arguments a JSON object as a {@code Map} (templates print it with {@code tojson}) or the JSON text as a
 *                  {@code String} (what the OpenAI API carries; templates such as DeepSeek-V3's print it as is)
 */
public record ToolCall(String id, String name, Object arguments) {

    public ToolCall {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(arguments, "arguments");
        if (!(arguments instanceof Map<?, ?> || arguments instanceof String)) {
            throw new IllegalArgumentException("tool call arguments must be a Map or a JSON String, got "
                    + arguments.getClass().getName());
        }
    }

    /** A call whose arguments are already a JSON text. */
    public static ToolCall withJsonArguments(String id, String name, String argumentsJson) {
        return new ToolCall(id, name, argumentsJson);
    }

    /** A call whose arguments are a JSON object. */
    public static ToolCall withArguments(String id, String name, Map<String, ?> arguments) {
        return new ToolCall(id, name, arguments);
    }

    /** The dict a chat template sees for this call. */
    Map<String, Object> toTemplateValue() {
        Map<String, Object> function = new LinkedHashMap<>();
        function.put("name", name);
        function.put("arguments", arguments);
        Map<String, Object> call = new LinkedHashMap<>();
        if (id != null) call.put("id", id);
        call.put("type", "function");
        call.put("function", function);
        return call;
    }
}
