package io.moeserve.gateway.openai;

import com.fasterxml.jackson.core.JsonGenerator;
import io.moeserve.tokenizer.TokenTexts;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * Writes one streaming response's Server-Sent Events, byte for byte as OpenAI sends them: {@code data: <json>\n\n}
 * per chunk, {@code data: [DONE]\n\n} at the end. One generator and buffer serve the whole stream, so a chunk
 * costs its own bytes and nothing else. Not thread-safe (the stream assembly calls it under its lock).
 */
public final class SseChunkWriter {
    private static final byte[] DONE = "data: [DONE]\n\n".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] DATA = "data: ".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] END = "\n\n".getBytes(StandardCharsets.US_ASCII);

    private final CompletionIdentity identity;
    private final boolean includeUsage;
    private final TokenTexts texts;
    private final String object;
    private final ByteArrayOutputStream buffer = new ByteArrayOutputStream(512);
    private final JsonGenerator g;

    /** @param includeUsage stream_options.include_usage: every chunk has {@code "usage": null}, and a last one the usage */
    public SseChunkWriter(CompletionIdentity identity, boolean includeUsage, TokenTexts texts) {
        this.identity = identity;
        this.includeUsage = includeUsage;
        this.texts = texts;
        this.object = identity.chat() ? "chat.completion.chunk" : "text_completion";
        try {
            g = JsonOutput.FACTORY.createGenerator(buffer);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        g.setRootValueSeparator(null);
    }

    /** A chat choice's first chunk: {@code "delta": {"role": "assistant", "content": ""}}. */
    public byte[] role(int index) {
        try {
            begin();
            choiceStart(index);
            g.writeObjectFieldStart("delta");
            g.writeStringField("role", "assistant");
            g.writeStringField("content", "");
            g.writeEndObject();
            g.writeNullField("logprobs");
            g.writeNullField("finish_reason");
            return choiceEnd();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** New text of a choice, with the logprobs of its tokens when they were asked for (null otherwise). */
    public byte[] content(int index, String text, List<LogprobEntry> logprobs) {
        try {
            begin();
            choiceStart(index);
            if (identity.chat()) {
                g.writeObjectFieldStart("delta");
                g.writeStringField("content", text);
                g.writeEndObject();
            } else {
                g.writeStringField("text", text);
                g.writeNumberField("index", index);
            }
            writeLogprobs(logprobs);
            g.writeNullField("finish_reason");
            return choiceEnd();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * A chat choice's parsed output (harmony): any of content, reasoning_content and tool call pieces in one delta,
     * with the logprobs of its tokens when they were asked for (null otherwise).
     */
    public byte[] parsed(int index, String content, String reasoning, List<ToolCallDelta> toolCalls,
                         List<LogprobEntry> logprobs) {
        try {
            begin();
            choiceStart(index);
            g.writeObjectFieldStart("delta");
            if (!content.isEmpty()) g.writeStringField("content", content);
            if (!reasoning.isEmpty()) g.writeStringField("reasoning_content", reasoning);
            if (!toolCalls.isEmpty()) {
                g.writeArrayFieldStart("tool_calls");
                for (ToolCallDelta call : toolCalls) writeToolCall(g, call, true);
                g.writeEndArray();
            }
            g.writeEndObject();
            writeLogprobs(logprobs);
            g.writeNullField("finish_reason");
            return choiceEnd();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * One tool call or piece of one: index (in a delta), then id, type and name when it begins, then the arguments.
     */
    static void writeToolCall(JsonGenerator g, ToolCallDelta call, boolean delta) throws IOException {
        g.writeStartObject();
        if (delta) g.writeNumberField("index", call.index());
        if (call.id() != null) {
            g.writeStringField("id", call.id());
            g.writeStringField("type", "function");
        }
        g.writeObjectFieldStart("function");
        if (call.name() != null) g.writeStringField("name", call.name());
        g.writeStringField("arguments", call.arguments());
        g.writeEndObject();
        g.writeEndObject();
    }

    /** A choice's last chunk: empty delta (or text) and the finish reason. */
    public byte[] finish(int index, String finishReason) {
        try {
            begin();
            choiceStart(index);
            if (identity.chat()) {
                g.writeObjectFieldStart("delta");
                g.writeEndObject();
            } else {
                g.writeStringField("text", "");
                g.writeNumberField("index", index);
            }
            g.writeNullField("logprobs");
            g.writeStringField("finish_reason", finishReason);
            return choiceEnd();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** stream_options.include_usage: the last chunk, with no choices and the whole request's usage. */
    public byte[] usage(int promptTokens, int completionTokens, int cachedPromptTokens) {
        try {
            begin();
            g.writeEndArray();
            g.writeFieldName("usage");
            CompletionResponseWriter.writeUsage(g, promptTokens, completionTokens, cachedPromptTokens);
            g.writeEndObject();
            g.flush();
            buffer.write(END);
            return buffer.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** An error after the stream has started: {@code data: {"error": {...}}} (then [DONE] follows). */
    public byte[] error(OpenAiError error) {
        try {
            buffer.reset();
            buffer.write(DATA);
            g.writeStartObject();
            g.writeFieldName("error");
            error.writeFields(g);
            g.writeEndObject();
            g.flush();
            buffer.write(END);
            return buffer.toByteArray();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The end of the stream: {@code data: [DONE]}. */
    public byte[] done() {
        return DONE;
    }

    private void begin() throws IOException {
        buffer.reset();
        buffer.write(DATA);
        g.writeStartObject();
        g.writeStringField("id", identity.id());
        g.writeStringField("object", object);
        g.writeNumberField("created", identity.created());
        g.writeStringField("model", identity.model());
        g.writeArrayFieldStart("choices");
    }

    private void choiceStart(int index) throws IOException {
        g.writeStartObject();
        // OpenAI's key order: chat choices start with "index", completion choices with "text".
        if (identity.chat()) g.writeNumberField("index", index);
    }

    private byte[] choiceEnd() throws IOException {
        g.writeEndObject();
        g.writeEndArray();
        return end();
    }

    private byte[] end() throws IOException {
        if (includeUsage) g.writeNullField("usage");
        g.writeEndObject();
        g.flush();
        buffer.write(END);
        return buffer.toByteArray();
    }

    private void writeLogprobs(List<LogprobEntry> logprobs) throws IOException {
        if (logprobs == null) {
            g.writeNullField("logprobs");
        } else {
            g.writeFieldName("logprobs");
            if (identity.chat()) LogprobsJson.writeChat(g, logprobs, texts);
            else LogprobsJson.writeCompletion(g, logprobs, texts);
        }
    }
}
