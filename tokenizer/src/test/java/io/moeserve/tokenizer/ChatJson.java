package io.moeserve.tokenizer;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Builds ChatMessage records from the OpenAI-style JSON of the golden cases. */
final class ChatJson {

    private ChatJson() {
    }

    @SuppressWarnings("unchecked")
    static ChatMessage message(Map<String, Object> m) {
        List<ToolCall> calls = new ArrayList<>();
        for (Map<String, Object> call : (List<Map<String, Object>>) m.getOrDefault("tool_calls", List.of())) {
            Map<String, Object> function = (Map<String, Object>) call.get("function");
            calls.add(new ToolCall((String) call.get("id"), (String) function.get("name"), function.get("arguments")));
        }
        return new ChatMessage((String) m.get("role"), (String) m.get("content"), calls,
                (String) m.get("reasoning_content"), (String) m.get("tool_call_id"), (String) m.get("name"));
    }
}
