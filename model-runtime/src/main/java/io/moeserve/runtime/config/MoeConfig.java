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
 */
public record MoeConfig(
        int numExperts,
        int numFfnExperts,
        int topK,
        int expertIntermediate,
        int sharedIntermediate,
        GateConfig gate,
        float swigluLimit) {

    public MoeConfig {
        if (topK > numExperts) throw new IllegalArgumentException("top-" + topK + " of " + numExperts + " experts");
    }

    /** Experts that are plain SwiGLU FFNs. */
    public MoeConfig(int numExperts, int numFfnExperts, int topK, int expertIntermediate, int sharedIntermediate,
                     GateConfig gate) {
        this(numExperts, numFfnExperts, topK, expertIntermediate, sharedIntermediate, gate, Float.NaN);
    }

    /** Whether the experts are gpt-oss's clamped SwiGLU rather than the plain one. */
    public boolean clampedExperts() {
        return !Float.isNaN(swigluLimit);
    }
}
