package io.moeserve.gateway;

import io.moeserve.tokenizer.TokenTexts;
import com.fasterxml.jackson.core.JsonGenerator;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.List;

/** Writes a whole (non-streaming) chat.completion or text_completion body. */
final class CompletionResponseWriter {

    /**
     * One finished choice.
     *
     * @param logprobs null when logprobs were not asked for
     */
    record ChoiceResult(int index, String text, List<LogprobEntry> logprobs, String finishReason,
                        int completionTokens) {}

    private CompletionResponseWriter() {}

    static byte[] write(GenerationPlan plan, List<ChoiceResult> choices, TokenTexts texts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream(512);
        int completionTokens = 0;
        try (JsonGenerator g = JsonOutput.FACTORY.createGenerator(out)) {
            g.writeStartObject();
            g.writeStringField("id", plan.id());
            g.writeStringField("object", plan.chat() ? "chat.completion" : "text_completion");
            g.writeNumberField("created", plan.created());
            g.writeStringField("model", plan.model());
            g.writeArrayFieldStart("choices");
            for (ChoiceResult c : choices) {
                completionTokens += c.completionTokens();
                g.writeStartObject();
                if (plan.chat()) {
                    g.writeNumberField("index", c.index());
                    g.writeObjectFieldStart("message");
                    g.writeStringField("role", "assistant");
                    g.writeStringField("content", c.text());
                    g.writeNullField("refusal");
                    g.writeEndObject();
                } else {
                    g.writeStringField("text", c.text());
                    g.writeNumberField("index", c.index());
                }
                if (c.logprobs() == null) {
                    g.writeNullField("logprobs");
                } else {
                    g.writeFieldName("logprobs");
                    if (plan.chat()) LogprobsJson.writeChat(g, c.logprobs(), texts);
                    else LogprobsJson.writeCompletion(g, c.logprobs(), texts);
                }
                g.writeStringField("finish_reason", c.finishReason());
                g.writeEndObject();
            }
            g.writeEndArray();
            g.writeFieldName("usage");
            writeUsage(g, plan.promptTokens(), completionTokens);
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }

    static void writeUsage(JsonGenerator g, int promptTokens, int completionTokens) throws IOException {
        g.writeStartObject();
        g.writeNumberField("prompt_tokens", promptTokens);
        g.writeNumberField("completion_tokens", completionTokens);
        g.writeNumberField("total_tokens", promptTokens + completionTokens);
        g.writeEndObject();
    }
}
