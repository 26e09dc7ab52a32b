package io.moeserve.runtime.model;

/**
 * Dynamic expert skipping, MC-MoE's online dynamic pruning (arXiv 2410.06270, "ODP"): after the gate, a token's
 * routed expert whose combine weight is below {@code threshold} × the token's top weight is not computed, and the
 * surviving weights are renormalised; in a prompt chunk the most important tokens keep all their experts. The
 * rule itself, and why it is what it is, is {@link ExpertSkipper}'s design note.
 *
 * <p>Off by default: a threshold of 0 skips nothing and leaves every output bit as it was. The threshold is a
 * deployment setting here, and a request may bring its own ({@link StepBatch#add(int, int, int, boolean, float)}).
 *
 * @param threshold       β in [0, 1]: skip expert j of a token when w_j &lt; β·w_top; 0 = off. The paper's per-layer
 *                        values for Mixtral-8x7B lie between 0.40 and 0.62
 * @param protectFraction τ_h in [0, 1]: in each sequence's prompt chunk of n &gt; 1 tokens, the ⌊τ_h·n⌋ tokens of
 *                        highest importance keep every expert (the released code's demo value is 0.02)
 */
public record ExpertSkipping(float threshold, float protectFraction) {
    /** No skipping; τ_h at the released code's value, for when a request turns skipping on. */
    public static final ExpertSkipping OFF = new ExpertSkipping(0f, 0.02f);

    public ExpertSkipping {
        if (!(threshold >= 0f && threshold <= 1f)) {
            throw new IllegalArgumentException("the expert skip threshold must lie in [0, 1], got " + threshold);
        }
        if (!(protectFraction >= 0f && protectFraction <= 1f)) {
            throw new IllegalArgumentException("the skip protect fraction must lie in [0, 1], got " + protectFraction);
        }
    }

    /** Whether a request's threshold is acceptable: in [0, 1]. */
    public static boolean validThreshold(float threshold) {
        return threshold >= 0f && threshold <= 1f;
    }
}
