package io.moeserve.runtime.config;

/**
 * How one model computes self-attention.
 *
 * @param kind              grouped-query attention (Llama-style) or DeepSeek's multi-head latent attention
 * @param numHeads          query heads
 * @param numKvHeads        key/value heads (GQA); equal to numHeads for MLA, whose keys are expanded per head
 * @param headDim           GQA head width (may differ from hidden/heads, as in Qwen3)
 * @param qkvBias           q, k and v projections carry biases
 * @param outputBias        o projection carries a bias
 * @param qkNorm            RMSNorm on queries and keys, per head (Qwen3) or over the whole projection (OLMoE)
 * @param clipQkv           OLMoE's clamp of q, k, v to [-c, c]; NaN when absent
 * @param slidingWindow     per layer: attend to at most this many most recent positions (0 = unlimited)
 * @param mla               the latent-attention dimensions; null for GQA
 * @param softmaxScale      multiplies q·k before the softmax
 * @param sinks             gpt-oss's attention sinks: a learned logit per head ({@code self_attn.sinks}) that joins
 *                          every softmax's denominator without being a key
 */
public record AttentionConfig(
        Kind kind,
        int numHeads,
        int numKvHeads,
        int headDim,
        boolean qkvBias,
        boolean outputBias,
        QkNorm qkNorm,
        float clipQkv,
        int[] slidingWindow,
        MlaDims mla,
        float softmaxScale,
        boolean sinks) {

    public enum Kind { GROUPED_QUERY, MULTI_HEAD_LATENT }

    public enum QkNorm { NONE, PER_HEAD, WHOLE_PROJECTION }

    /** DeepSeek MLA widths; qLoraRank = 0 means a plain q_proj (DeepSeek-V2-Lite). */
    public record MlaDims(int qLoraRank, int kvLoraRank, int qkNopeHeadDim, int qkRopeHeadDim, int vHeadDim,
                          boolean projectionBias) {
        public int qkHeadDim() {
            return qkNopeHeadDim + qkRopeHeadDim;
        }
    }

    /**
     * Grouped-query attention as config.json gives it (num_key_value_heads, head_dim), with no biases, no q/k
     * norm and no clipping; a family adds those with the {@code with...} methods.
     *
     * @param readHeadDim whether the family honours a head_dim key (else head_dim is hidden_size / heads)
     * @param window      per layer: the sliding window, 0 for none
     */
    public static AttentionConfig groupedQuery(ConfigReader c, int hidden, int heads, boolean readHeadDim, int[] window) {
        int kvHeads = c.positiveIntOr("num_key_value_heads", heads);
        if (heads % kvHeads != 0) throw c.error("num_key_value_heads", kvHeads + " does not divide num_attention_heads " + heads);
        int headDim;
        if (c.has("head_dim") && readHeadDim) {
            headDim = c.positiveInt("head_dim");
        } else {
            if (hidden % heads != 0) throw c.error("num_attention_heads", heads + " does not divide hidden_size " + hidden);
            headDim = hidden / heads;
        }
        if (headDim % 2 != 0) throw c.error("head_dim", "must be even for rotary embeddings, got " + headDim);
        return new AttentionConfig(Kind.GROUPED_QUERY, heads, kvHeads, headDim, false, false, QkNorm.NONE, Float.NaN,
                window, null, (float) Math.pow(headDim, -0.5), false);
    }

    public AttentionConfig withBiases(boolean qkv, boolean output) {
        return new AttentionConfig(kind, numHeads, numKvHeads, headDim, qkv, output, qkNorm, clipQkv, slidingWindow, mla,
                softmaxScale, sinks);
    }

    public AttentionConfig withQkNorm(QkNorm norm) {
        return new AttentionConfig(kind, numHeads, numKvHeads, headDim, qkvBias, outputBias, norm, clipQkv, slidingWindow,
                mla, softmaxScale, sinks);
    }

    public AttentionConfig withClipQkv(float clip) {
        return new AttentionConfig(kind, numHeads, numKvHeads, headDim, qkvBias, outputBias, qkNorm, clip, slidingWindow,
                mla, softmaxScale, sinks);
    }

    public AttentionConfig withSoftmaxScale(float scale) {
        return new AttentionConfig(kind, numHeads, numKvHeads, headDim, qkvBias, outputBias, qkNorm, clipQkv,
                slidingWindow, mla, scale, sinks);
    }

    public AttentionConfig withSinks(boolean withSinks) {
        return new AttentionConfig(kind, numHeads, numKvHeads, headDim, qkvBias, outputBias, qkNorm, clipQkv,
                slidingWindow, mla, softmaxScale, withSinks);
    }

    /** Width of one cached key row for all heads of a layer. */
    public int keyWidth() {
        return kind == Kind.GROUPED_QUERY ? numKvHeads * headDim : numHeads * mla.qkHeadDim();
    }

    /** Width of one cached value row for all heads of a layer. */
    public int valueWidth() {
        return kind == Kind.GROUPED_QUERY ? numKvHeads * headDim : numHeads * mla.vHeadDim();
    }

    /** Per-head width of queries and keys. */
    public int qkHeadDim() {
        return kind == Kind.GROUPED_QUERY ? headDim : mla.qkHeadDim();
    }

    /** Per-head width of values. */
    public int vHeadDim() {
        return kind == Kind.GROUPED_QUERY ? headDim : mla.vHeadDim();
    }

    /** Width of the attention output before o_proj. */
    public int outputWidth() {
        return numHeads * vHeadDim();
    }
}
