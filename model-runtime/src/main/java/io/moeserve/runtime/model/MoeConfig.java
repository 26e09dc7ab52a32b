package io.moeserve.runtime.model;

/**
 * The Mixture-of-Experts block of one model: how many experts, how the router picks and weighs them, and what
 * runs beside them.
 *
 * @param numExperts            router outputs (for MoE++ this includes the four zero-computation experts)
 * @param numFfnExperts         experts that are feed-forward networks (the ones expert pods host)
 * @param topK                  experts per token
 * @param expertIntermediate    width of one routed expert's FFN
 * @param router                selection and weighting rule
 * @param normTopkProb          renormalise the selected weights to sum to 1
 * @param routedScalingFactor   multiplies the routed weights (DeepSeek)
 * @param numGroups             expert groups for group-limited routing (DeepSeek), 1 otherwise
 * @param topkGroups            groups kept per token
 * @param sharedIntermediate    width of the shared expert(s) FFN, 0 when there is none
 * @param sharedExpertGated     Qwen2-MoE's per-token sigmoid gate on the shared expert
 * @param moePlusPlus           MoE++ gate options; null for other families
 */
public record MoeConfig(
        int numExperts,
        int numFfnExperts,
        int topK,
        int expertIntermediate,
        RouterKind router,
        boolean normTopkProb,
        float routedScalingFactor,
        int numGroups,
        int topkGroups,
        int sharedIntermediate,
        boolean sharedExpertGated,
        MoePlusPlus moePlusPlus) {

    public enum RouterKind {
        /** softmax over all experts, top-k (Mixtral, Qwen, OLMoE, DeepSeek-V2 greedy). */
        SOFTMAX_TOPK,
        /** DeepSeek-V2: softmax, keep the top groups by their best expert, then top-k. */
        SOFTMAX_GROUP_LIMITED,
        /** DeepSeek-V3 noaux_tc: sigmoid, bias for selection only, groups by top-2 sum, top-k, renormalise. */
        SIGMOID_GROUP_LIMITED,
        /** MoE++: (2-layer) gate with gating residual; zero, copy and constant experts. */
        MOE_PLUS_PLUS
    }

    /**
     * MoE++ options (names as in its config.json).
     *
     * @param twoLayerGate   wg.0 [8E, H], tanh, wg.2 [E, 8E] instead of one [E, H] gate
     * @param mixtralGating  top-2 of raw logits then softmax over them; no zero-expert rule, no input scaling
     * @param logitsNorm     divide logits by their (unbiased) std over experts, times gateNormStd
     * @param gateNormStd    target std for logitsNorm
     * @param inputScale     the released code multiplies the experts' input by top-k (2) unless disabled
     */
    public record MoePlusPlus(boolean twoLayerGate, boolean mixtralGating, boolean logitsNorm, float gateNormStd,
                              float inputScale) {
        public static final int CONSTANT_EXPERTS = 2;
    }

    /** Expert id of MoE++'s zero expert (the last). */
    public int zeroExpertId() {
        return numExperts - 1;
    }

    /** Expert id of MoE++'s copy expert. */
    public int copyExpertId() {
        return numExperts - 2;
    }

    /** First MoE++ constant expert id (there are two). */
    public int firstConstantExpertId() {
        return numExperts - 4;
    }
}
