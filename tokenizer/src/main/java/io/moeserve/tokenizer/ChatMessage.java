package io.moeserve.tokenizer;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * One message of a conversation, in the shape Hugging Face chat templates read.
 *
 * <p>The role is a free string because templates decide what they accept (system, user, assistant, tool; some
 * also developer or ipython). Fields that are null are left out of the message a template sees, except
 * {@code content}, which is there as None when null unless {@code contentOmitted}: templates tell "no content"
 * from a missing key both ways. DeepSeek-V3's tests {@code message['content'] is none} (so an explicit null must
 * be None), gpt-oss's tests {@code "x" in message.content} after {@code "content" in message} (which jinja2
 * cannot do on None, so a message sent without content must stay without it). The dict is what transformers
 * gets from the same request JSON.
 *
 * <p>The assistant's reasoning reaches the template under the key that template reads ({@link
 * ChatTemplate#reasoningKey()}): {@code reasoning_content} for Qwen3's and DeepSeek's, {@code thinking} for
 * gpt-oss's.
 *
 * @param role             system, user, assistant or tool
 * @param content          the text; null for an assistant turn that only calls tools
 * @param toolCalls        the assistant's function calls; empty for other roles
 * @param reasoningContent the assistant's reasoning kept apart from the answer (Qwen3, DeepSeek-R1); may be null
 * @param toolCallId       for a tool message, the id of the call it answers; may be null
 * @param name             for a tool message, the function's name; may be null
 * @param contentOmitted   the request had no content key at all (content is then null): the template sees none
 */
public record ChatMessage(String role, String content, List<ToolCall> toolCalls, String reasoningContent,
                          String toolCallId, String name, boolean contentOmitted) {

    public ChatMessage {
        Objects.requireNonNull(role, "role");
        if (role.isBlank()) throw new IllegalArgumentException("role must not be blank");
        if (contentOmitted && content != null) throw new IllegalArgumentException("omitted content must be null");
        toolCalls = toolCalls == null ? List.of() : List.copyOf(toolCalls);
    }

    /** A message whose content, when null, the template sees as None. */
    public ChatMessage(String role, String content, List<ToolCall> toolCalls, String reasoningContent,
                       String toolCallId, String name) {
        this(role, content, toolCalls, reasoningContent, toolCallId, name, false);
    }

    public static ChatMessage system(String content) {
        return new ChatMessage("system", content, List.of(), null, null, null);
    }

    public static ChatMessage user(String content) {
        return new ChatMessage("user", content, List.of(), null, null, null);
    }

    public static ChatMessage assistant(String content) {
        return new ChatMessage("assistant", content, List.of(), null, null, null);
    }

    /** An assistant turn with its reasoning kept separately (rendered as {@code <think>} by Qwen3's template). */
    public static ChatMessage assistant(String content, String reasoningContent) {
        return new ChatMessage("assistant", content, List.of(), reasoningContent, null, null);
    }

    /** An assistant turn that calls tools; content may be null. */
    public static ChatMessage assistantToolCalls(String content, List<ToolCall> toolCalls) {
        return new ChatMessage("assistant", content, toolCalls, null, null, null);
    }

    /** A tool's result; toolCallId and name may be null. */
    public static ChatMessage tool(String content, String toolCallId, String name) {
        return new ChatMessage("tool", content, List.of(), null, toolCallId, name);
    }

    /**
     * The dict a chat template sees for this message (keys in the order OpenAI's API writes them).
     *
     * @param reasoningKey the key the reasoning goes under: reasoning_content or thinking
     */
    Map<String, Object> toTemplateValue(String reasoningKey) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("role", role);
        if (!contentOmitted) m.put("content", content);
        if (!toolCalls.isEmpty()) {
            List<Object> calls = new ArrayList<>(toolCalls.size());
            for (ToolCall call : toolCalls) calls.add(call.toTemplateValue());
            m.put("tool_calls", calls);
        }
        if (reasoningContent != null) m.put(reasoningKey, reasoningContent);
        if (toolCallId != null) m.put("tool_call_id", toolCallId);
        if (name != null) m.put("name", name);
        return m;
    }
}
