package io.moeserve.gateway.generation;

/**
 * Splits a chat completion's generated text into reasoning, content and tool calls as it is generated, token by
 * token, for one choice. One implementation per output format: {@link HarmonyParser} (gpt-oss),
 * {@link TaggedOutputParser} (Qwen's {@code <tool_call>}, DeepSeek's {@code <｜tool▁calls▁begin｜>}, both with
 * {@code <think>} reasoning) and {@link JsonToolCallParser} (Mistral's {@code [TOOL_CALLS]}, Llama 3.x's JSON
 * calls). Malformed output is content, never an exception. Not thread-safe.
 */
interface ChatOutputParser {

    /** What the parsed output becomes. */
    interface Sink {
        void reasoning(String text);

        void content(String text);

        /** A new tool call to the function {@code name}; {@link #arguments} fragments follow. */
        void toolCall(String name);

        void arguments(String text);
    }

    /**
     * One generated token: its id, and the text the detokenizer released with it (empty for special tokens, and
     * for tokens that hold part of a character).
     */
    void accept(int id, String text);

    /** Text released without a token of its own (the detokenizer's flush at the end). */
    void text(String text);

    /** The end of generation: whatever was held back is decided. */
    void finish();

    /** Whether the output called a tool (finish_reason tool_calls when generation stopped on its own). */
    boolean calledTool();
}
