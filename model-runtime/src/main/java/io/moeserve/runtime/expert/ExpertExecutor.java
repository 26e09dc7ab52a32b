package io.moeserve.runtime.expert;

/**
 * Computes the routed experts of one MoE layer for a batch of tokens: the seam between the router's math and
 * wherever the experts live (this process's CPU kernels, a GPU, or expert pods over the network).
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

    /** Whether a call waits on other processes (expert pods) rather than computing on this machine's cores. */
    default boolean waitsOnOtherProcesses() {
        return false;
    }
}
