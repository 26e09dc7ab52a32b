package io.moeserve.runtime.expert;

/**
 * Computes the routed experts of one MoE layer for a batch of tokens: the seam between the router's math and
 * wherever the experts live (this process's CPU kernels, a GPU, or expert pods over the network).
 *
 * <p>A call can be split in two, {@link #begin} and {@link #finish}, so that the caller works while the experts
 * compute elsewhere: the router computes its shared expert, or another micro-batch's attention, while a layer's
 * hidden states are at the expert pods. Each call in flight has its own lane (0 to {@link #lanes()} − 1), whose
 * state the executor allocates once, so several calls can be in flight at once and none allocates. An executor
 * that computes on this machine's cores has nothing to overlap with: its begin computes and its finish returns.
 */
public interface ExpertExecutor {

    /**
     * For every token t < n: {@code out[t] = Σ_j weights[t·k + j] · Expert_{layer, experts[t·k + j]}(x[t])}, over
     * the j whose expert id is ≥ 0 (entries of -1 are skipped: the router computed them itself). Per token the
     * terms are added in ascending expert id, so results do not depend on how experts are spread over workers.
     *
     * @param step the forward step's id ({@code StepBatch.id()}), which executors that call expert pods send with
     *             the call for the pods' logs; 0 where there is no step (an expert pod's own batches)
     * @param x   n rows of hidden_size floats: the experts' input
     * @param out n rows of hidden_size floats, overwritten
     */
    void computeExperts(long step, int layer, int n, int k, float[] x, int[] experts, float[] weights, float[] out);

    /**
     * Starts the call {@link #computeExperts} makes, on lane {@code lane}; {@code out} holds its answer once
     * {@link #finish} of the lane returns. {@code x} may be reused as soon as this returns; {@code experts},
     * {@code weights} and {@code out} must be left alone until the lane is finished. A lane holds one call at a time.
     *
     * @param stepRows the step row of each of the n rows (a micro-batch's rows are a subset of the step's), used
     *                 only to name rows in failures and masking reports; null when the rows are the step's own
     */
    default void begin(long step, int layer, int n, int k, float[] x, int[] experts, float[] weights, float[] out,
                       int[] stepRows, int lane) {
        computeExperts(step, layer, n, k, x, experts, weights, out);
    }

    /**
     * Waits for the lane's call and completes {@code out}.
     *
     * @throws ExpertUnavailableException as {@link #computeExperts} does, naming step rows
     */
    default void finish(int lane) {
    }

    /**
     * Tells the executor which experts of a later layer the tokens of the coming call are likely to pick
     * (pre-gating: that layer's gate applied to this layer's hidden states), {@code experts[0, n·k)}, -1 entries
     * ignored; called before {@link #begin} of the call, and only when {@link #prefetches()}. An executor that keeps
     * part of its experts out of memory ({@link OffloadingExpertExecutor}) reads those in while the call computes.
     * Advice only: the prediction never changes what any call computes.
     */
    default void prefetch(int layer, int n, int k, int[] experts) {
    }

    /** Whether {@link #prefetch} does anything, so that callers predict only for executors that use it. */
    default boolean prefetches() {
        return false;
    }

    /** How many calls can be in flight at once. */
    default int lanes() {
        return 1;
    }

    /** Whether a call waits on other processes (expert pods) rather than computing on this machine's cores. */
    default boolean waitsOnOtherProcesses() {
        return false;
    }
}
