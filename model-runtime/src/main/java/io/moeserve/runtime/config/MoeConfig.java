package io.moeserve.runtime.config;

/**
 * The Mixture-of-Experts block of one model: how many experts, how many per token, how wide, what runs beside
 * them, and the gate's own settings (whose type belongs to the model family that reads them).
 *
 * @param numExperts         gate outputs (for MoE++ this includes the four zero-computation experts)
 * @param numFfnExperts      experts that are feed-forward networks (the ones expert pods host)
 * @param topK               experts per token
 * @param expertIntermediate width of one routed expert's FFN
 * @param sharedIntermediate width of the shared expert(s) FFN, 0 when there is none
 * @param gate               the gating function's settings
 * @param swigluLimit        gpt-oss's clamp of the experts' gate and up projections (its clamped SwiGLU with biases
 *                           and the interleaved gate_up); NaN for the plain SwiGLU of every other family
 * @param expertAlias        a merged checkpoint's alias table (config.json's {@code expert_alias}): per decoder layer,
 *                           the merged FFN expert each of the gate's {@code numExperts} outputs is computed by, null for
 *                           a dense layer; null when the experts are not merged (each gate output is its own expert)
 */
public record MoeConfig(
        int numExperts,
        int numFfnExperts,
        int topK,
        int expertIntermediate,
        int sharedIntermediate,
        GateConfig gate,
        float swigluLimit,
        int[][] expertAlias) {

    public MoeConfig {
        if (topK > numExperts) throw new IllegalArgumentException("top-" + topK + " of " + numExperts + " experts");
    }

    /** Experts that are not merged. */
    public MoeConfig(int numExperts, int numFfnExperts, int topK, int expertIntermediate, int sharedIntermediate,
                     GateConfig gate, float swigluLimit) {
        this(numExperts, numFfnExperts, topK, expertIntermediate, sharedIntermediate, gate, swigluLimit, null);
    }

    /** Experts that are plain SwiGLU FFNs. */
    public MoeConfig(int numExperts, int numFfnExperts, int topK, int expertIntermediate, int sharedIntermediate,
                     GateConfig gate) {
        this(numExperts, numFfnExperts, topK, expertIntermediate, sharedIntermediate, gate, Float.NaN);
    }

    /**
     * The same block with merged experts: {@code merged} FFN experts per MoE layer, and the alias table that maps the
     * gate's outputs to them.
     */
    public MoeConfig withExpertAlias(int[][] alias, int merged) {
        return new MoeConfig(numExperts, merged, topK, expertIntermediate, sharedIntermediate, gate, swigluLimit, alias);
    }

    /** The merged expert of each gate output in {@code layer}, or null where the experts are not merged. */
    public int[] aliasOf(int layer) {
        return expertAlias == null || layer >= expertAlias.length ? null : expertAlias[layer];
    }

    /** Whether the experts are gpt-oss's clamped SwiGLU rather than the plain one. */
    public boolean clampedExperts() {
        return !Float.isNaN(swigluLimit);
    }
}
