package io.moeserve.gateway.openai;

/**
 * A tool call, or a piece of one when streaming: the first piece has the id and name, later ones only argument
 * text (OpenAI's {@code delta.tool_calls}). A whole call has all three.
 *
 * @param index     the call's position in the choice's tool_calls
 * @param id        the call's id; null on later pieces
 * @param name      the function's name; null on later pieces
 * @param arguments JSON text, or a fragment of it
 */
public record ToolCallDelta(int index, String id, String name, String arguments) {}
