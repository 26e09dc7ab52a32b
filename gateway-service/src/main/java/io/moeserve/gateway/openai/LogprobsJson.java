package io.moeserve.gateway.openai;

import com.fasterxml.jackson.core.JsonGenerator;
import io.moeserve.proto.router.v1.TokenLogprob;
import io.moeserve.tokenizer.TokenTexts;
import java.io.IOException;
import java.util.List;

/** Writes log-probabilities in the two OpenAI formats: chat's {@code content[]} and the legacy completions one. */
final class LogprobsJson {
    /** What OpenAI and vLLM put where the log-probability is minus infinity, which JSON cannot carry. */
    private static final float NEGATIVE_INFINITY_STANDIN = -9999.0f;

    private LogprobsJson() {}

    /** {@code {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}], "refusal": null}} */
    static void writeChat(JsonGenerator g, List<LogprobEntry> entries, TokenTexts texts) throws IOException {
        g.writeStartObject();
        g.writeArrayFieldStart("content");
        for (LogprobEntry e : entries) {
            TokenLogprob lp = e.logprob();
            g.writeStartObject();
            writeToken(g, lp.getTokenId(), lp.getLogprob(), texts);
            g.writeArrayFieldStart("top_logprobs");
            int tops = Math.min(lp.getTopTokenIdsCount(), lp.getTopLogprobsCount());
            for (int k = 0; k < tops; k++) {
                g.writeStartObject();
                writeToken(g, lp.getTopTokenIds(k), lp.getTopLogprobs(k), texts);
                g.writeEndObject();
            }
            g.writeEndArray();
            g.writeEndObject();
        }
        g.writeEndArray();
        g.writeNullField("refusal");
        g.writeEndObject();
    }

    /**
     * {@code {"tokens", "token_logprobs", "top_logprobs": [{token: logprob}], "text_offset"}}; each top_logprobs
     * map holds the requested alternatives and always the sampled token (so up to logprobs + 1 entries, as
     * OpenAI documents).
     */
    static void writeCompletion(JsonGenerator g, List<LogprobEntry> entries, TokenTexts texts) throws IOException {
        g.writeStartObject();
        g.writeArrayFieldStart("tokens");
        for (LogprobEntry e : entries) g.writeString(texts.text(e.logprob().getTokenId()));
        g.writeEndArray();
        g.writeArrayFieldStart("token_logprobs");
        for (LogprobEntry e : entries) g.writeNumber(finite(e.logprob().getLogprob()));
        g.writeEndArray();
        g.writeArrayFieldStart("top_logprobs");
        for (LogprobEntry e : entries) {
            TokenLogprob lp = e.logprob();
            g.writeStartObject();
            int tops = Math.min(lp.getTopTokenIdsCount(), lp.getTopLogprobsCount());
            boolean sampledListed = false;
            for (int k = 0; k < tops; k++) {
                int id = lp.getTopTokenIds(k);
                if (id == lp.getTokenId()) sampledListed = true;
                if (!earlierSameText(lp, k, texts)) {
                    g.writeNumberField(texts.text(id), finite(lp.getTopLogprobs(k)));
                }
            }
            if (!sampledListed && !sameTextAmongTops(lp, tops, texts)) {
                g.writeNumberField(texts.text(lp.getTokenId()), finite(lp.getLogprob()));
            }
            g.writeEndObject();
        }
        g.writeEndArray();
        g.writeArrayFieldStart("text_offset");
        for (LogprobEntry e : entries) g.writeNumber(e.textOffset());
        g.writeEndArray();
        g.writeEndObject();
    }

    private static void writeToken(JsonGenerator g, int id, float logprob, TokenTexts texts) throws IOException {
        g.writeStringField("token", texts.text(id));
        g.writeNumberField("logprob", finite(logprob));
        g.writeArrayFieldStart("bytes");
        for (byte b : texts.bytes(id)) g.writeNumber(b & 0xFF);
        g.writeEndArray();
    }

    /** Two ids can share a text (e.g. partial bytes shown as U+FFFD); a JSON object keeps the first, likeliest. */
    private static boolean earlierSameText(TokenLogprob lp, int k, TokenTexts texts) {
        String text = texts.text(lp.getTopTokenIds(k));
        for (int j = 0; j < k; j++) {
            if (texts.text(lp.getTopTokenIds(j)).equals(text)) return true;
        }
        return false;
    }

    private static boolean sameTextAmongTops(TokenLogprob lp, int tops, TokenTexts texts) {
        String text = texts.text(lp.getTokenId());
        for (int j = 0; j < tops; j++) {
            if (texts.text(lp.getTopTokenIds(j)).equals(text)) return true;
        }
        return false;
    }

    static float finite(float logprob) {
        return Float.isFinite(logprob) ? logprob : NEGATIVE_INFINITY_STANDIN;
    }
}
