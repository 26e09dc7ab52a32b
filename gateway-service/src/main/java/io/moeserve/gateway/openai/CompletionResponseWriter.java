package io.moeserve.gateway.openai;

import com.fasterxml.jackson.core.JsonGenerator;
import io.moeserve.tokenizer.TokenTexts;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;

/** Writes a whole (non-streaming) chat.completion or text_completion body. */
public final class CompletionResponseWriter {

    /**
     * One finished choice.
     *
     * @param logprobs  null when logprobs were not asked for
     * @param reasoning the chat message's reasoning_content (harmony's analysis channel); null for none
     * @param toolCalls the chat message's tool calls, whole; empty for none
     */
    public record ChoiceResult(int index, String text, List<LogprobEntry> logprobs, String finishReason,
                        int completionTokens, String reasoning, List<ToolCallDelta> toolCalls) {
        public ChoiceResult(int index, String text, List<LogprobEntry> logprobs, String finishReason, int completionTokens) {
            this(index, text, logprobs, finishReason, completionTokens, null, List.of());
        }
    }

    private CompletionResponseWriter() {}

    /**
     * @param promptTokens       for usage: each prompt once, however many choices it has
     * @param cachedPromptTokens of those, the ones the router took from its prefix cache
     */
    public static byte[] write(CompletionIdentity identity, int promptTokens, int cachedPromptTokens, List<ChoiceResult> choices,
                               TokenTexts texts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(512);
        int completionTokens = 0;
        try (JsonGenerator g = JsonOutput.FACTORY.createGenerator(out)) {
            g.writeStartObject();
            g.writeStringField("id", identity.id());
            g.writeStringField("object", identity.chat() ? "chat.completion" : "text_completion");
            g.writeNumberField("created", identity.created());
            g.writeStringField("model", identity.model());
            g.writeArrayFieldStart("choices");
            for (ChoiceResult c : choices) {
                completionTokens += c.completionTokens();
                g.writeStartObject();
                if (identity.chat()) {
                    g.writeNumberField("index", c.index());
                    g.writeObjectFieldStart("message");
                    g.writeStringField("role", "assistant");
                    // OpenAI's content is null for a message that only calls tools.
                    if (c.text().isEmpty() && !c.toolCalls().isEmpty()) g.writeNullField("content");
                    else g.writeStringField("content", c.text());
                    g.writeNullField("refusal");
                    if (c.reasoning() != null) g.writeStringField("reasoning_content", c.reasoning());
                    if (!c.toolCalls().isEmpty()) {
                        g.writeArrayFieldStart("tool_calls");
                        for (ToolCallDelta call : c.toolCalls()) SseChunkWriter.writeToolCall(g, call, false);
                        g.writeEndArray();
                    }
                    g.writeEndObject();
                } else {
                    g.writeStringField("text", c.text());
                    g.writeNumberField("index", c.index());
                }
                if (c.logprobs() == null) {
                    g.writeNullField("logprobs");
                } else {
                    g.writeFieldName("logprobs");
                    if (identity.chat()) LogprobsJson.writeChat(g, c.logprobs(), texts);
                    else LogprobsJson.writeCompletion(g, c.logprobs(), texts);
                }
                g.writeStringField("finish_reason", c.finishReason());
                g.writeEndObject();
            }
            g.writeEndArray();
            g.writeFieldName("usage");
            writeUsage(g, promptTokens, completionTokens, cachedPromptTokens);
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    /** OpenAI's usage object; prompt_tokens_details.cached_tokens is what the router's prefix cache served. */
    static void writeUsage(JsonGenerator g, int promptTokens, int completionTokens, int cachedPromptTokens) throws IOException {
        g.writeStartObject();
        g.writeNumberField("prompt_tokens", promptTokens);
        g.writeNumberField("completion_tokens", completionTokens);
        g.writeNumberField("total_tokens", promptTokens + completionTokens);
        g.writeObjectFieldStart("prompt_tokens_details");
        g.writeNumberField("cached_tokens", cachedPromptTokens);
        g.writeEndObject();
        g.writeEndObject();
    }
}
