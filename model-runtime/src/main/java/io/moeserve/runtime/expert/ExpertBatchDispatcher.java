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

    /**
     * Sends the batches' calls on lane {@code lane} and returns without waiting; {@link #await} of the lane waits.
     * The batches must be left alone until then. By default the call is made here, synchronously.
     */
    default void begin(long step, int layer, ExpertBatch[] batches, int lane) {
        dispatch(step, layer, batches);
    }

    /**
     * Waits until every batch of the lane's call is filled.
     *
     * @throws ExpertUnavailableException as {@link #dispatch} does
     */
    default void await(int lane) {
    }

    /** How many calls can be in flight at once, one per lane. */
    default int lanes() {
        return 1;
    }
}
