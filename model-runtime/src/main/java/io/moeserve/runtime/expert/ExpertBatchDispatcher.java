package io.moeserve.runtime.expert;

/**
 * Computes the groups' shares of one MoE layer call, wherever the groups live (in this process, or expert pods
 * over gRPC), all of them concurrently if it can.
 */
public interface ExpertBatchDispatcher {
    /**
     * Fills {@code out} of every non-empty batch {@code batches[g]}, computed by expert group g, and returns when
     * all are done.
     *
     * @param step the forward step's id, sent with the calls for the pods' logs
     * @throws ExpertUnavailableException when some group cannot compute its batch (after whatever retries the
     *                                    dispatcher makes); the exception names the step rows that needed it
     */
    void dispatch(long step, int layer, ExpertBatch[] batches);
}
