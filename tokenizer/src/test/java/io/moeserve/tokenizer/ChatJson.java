package io.moeserve.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Builds ChatMessage records from the OpenAI-style JSON of the golden cases. */
final class ChatJson {

    private ChatJson() {
    }

    /**
     * The reasoning is read from reasoning_content or thinking, whichever the case has (the template sees it under
     * the key it reads); a case without a content key gives a message whose content is omitted.
     */
    @SuppressWarnings("unchecked")
    static ChatMessage message(Map<String, Object> m) {
        List<ToolCall> calls = new ArrayList<>();
        for (Map<String, Object> call : (List<Map<String, Object>>) m.getOrDefault("tool_calls", List.of())) {
            Map<String, Object> function = (Map<String, Object>) call.get("function");
            calls.add(new ToolCall((String) call.get("id"), (String) function.get("name"), function.get("arguments")));
        }
        String reasoning = (String) (m.containsKey("thinking") ? m.get("thinking") : m.get("reasoning_content"));
        return new ChatMessage((String) m.get("role"), (String) m.get("content"), calls, reasoning,
                (String) m.get("tool_call_id"), (String) m.get("name"), !m.containsKey("content"));
    }
}
