package io.moeserve.runtime.model;

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
        float softmaxScale) {

    public enum Kind { GROUPED_QUERY, MULTI_HEAD_LATENT }

    public enum QkNorm { NONE, PER_HEAD, WHOLE_PROJECTION }

    /** DeepSeek MLA widths; qLoraRank = 0 means a plain q_proj (DeepSeek-V2-Lite). */
    public record MlaDims(int qLoraRank, int kvLoraRank, int qkNopeHeadDim, int qkRopeHeadDim, int vHeadDim,
                          boolean projectionBias) {
        public int qkHeadDim() {
            return qkNopeHeadDim + qkRopeHeadDim;
        }
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
