package io.moeserve.runtime.model;

/**
 * Computes the groups' shares of one MoE layer call, wherever the groups live (in this process, or expert pods
 * over gRPC), all of them concurrently if it can.
 */
public interface ExpertBatchDispatcher {
    /**
     * Fills {@code out} of every non-empty batch {@code batches[g]}, computed by expert group g, and returns when
     * all are done.
     *
     * @throws ExpertUnavailableException when some group cannot compute its batch (after whatever retries the
     *                                    dispatcher makes); the exception names the step rows that needed it
     */
    void dispatch(int layer, ExpertBatch[] batches);
}
