package io.moeserve.router;

import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.proto.router.v1.TokenLogprob;

/**
 * Turns sampled tokens into Generate messages, with their log-probabilities when asked: the engine thread's scratch
 * for that (a copy of the raw logits row, since sampling changes the row, and the top-n buffers), shared by every
 * sequence because only the engine thread uses it, one token at a time.
 */
final class TokenStream {
    private final RouterMetrics metrics;
    private final int vocab;
    private final float[] raw;
    private final int[] topIds = new int[20];
    private final float[] topValues = new float[20];

    TokenStream(RouterMetrics metrics, int vocab) {
        this.metrics = metrics;
        this.vocab = vocab;
        this.raw = new float[vocab];
    }

    /** Keeps the row the next token is sampled from, for its logprobs. */
    void keepRawLogits(float[] logits, int offset) {
        System.arraycopy(logits, offset, raw, 0, vocab);
    }

    /** The message carrying a token; with its logprob and {@code top} alternatives when {@code top ≥ 0}. */
    GenerateResponse.Builder message(int token, int top) {
        metrics.tokenGenerated();
        GenerateResponse.Builder out = GenerateResponse.newBuilder().addTokenIds(token);
        if (top >= 0) out.addLogprobs(logprob(token, top));
        return out;
    }

    /** log softmax of the raw row: the chosen token's and the top-n alternatives'. */
    private TokenLogprob logprob(int token, int top) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) max = Math.max(max, raw[i]);
        double sum = 0;
        for (int i = 0; i < vocab; i++) sum += Math.exp(raw[i] - max);
        float lse = (float) (max + Math.log(sum));
        TokenLogprob.Builder b = TokenLogprob.newBuilder().setTokenId(token).setLogprob(raw[token] - lse);
        int n = Math.min(top, vocab);
        // Insertion into a small sorted array: n ≤ 20, one pass over the vocabulary.
        int filled = 0;
        for (int i = 0; i < vocab; i++) {
            float v = raw[i];
            if (filled == n && (n == 0 || v <= topValues[n - 1])) continue;
            int j = filled < n ? filled++ : n - 1;
            while (j > 0 && topValues[j - 1] < v) {
                topValues[j] = topValues[j - 1];
                topIds[j] = topIds[j - 1];
                j--;
            }
            topValues[j] = v;
            topIds[j] = i;
        }
        for (int j = 0; j < filled; j++) b.addTopTokenIds(topIds[j]).addTopLogprobs(topValues[j] - lse);
        return b.build();
    }
}
