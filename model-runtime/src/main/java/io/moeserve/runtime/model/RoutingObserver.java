package io.moeserve.runtime.model;

/**
 * Sees every routing decision: for each MoE layer of a step, the chosen experts and combine weights of each token.
 * Used for routing statistics and for reference comparisons. Called on the forward thread; the arrays are reused
 * after the call returns.
 */
@FunctionalInterface
public interface RoutingObserver {
    /**
     * @param layer   decoder layer index
     * @param batch   the step (token i's position and slot)
     * @param k       experts per token
     * @param experts n·k expert ids, token-major, in descending order of selection score; in a merged checkpoint the
     *                merged experts' ids, and -1 where a token's second choice fell to the merged expert of its first
     * @param weights n·k combine weights
     */
    void onRouting(int layer, StepBatch batch, int k, int[] experts, float[] weights);

    /**
     * Expert skipping ({@link ExpertSkipping}) dropped some of the pairs {@link #onRouting} just reported: they are
     * not computed, here nor in any pod. Called only when at least one pair of the layer was dropped.
     *
     * @param experts n·k expert ids as the gate chose them
     * @param skipped n·k: the expert id where the slot was dropped, -1 where it was kept
     * @param pairs   how many entries of {@code skipped} are not -1
     */
    default void onSkipped(int layer, StepBatch batch, int k, int[] experts, int[] skipped, int pairs) {}

    RoutingObserver NONE = (layer, batch, k, experts, weights) -> { };
}
