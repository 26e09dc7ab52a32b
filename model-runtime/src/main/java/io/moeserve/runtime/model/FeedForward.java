package io.moeserve.runtime.model;

/**
 * One layer's FFN: a dense MLP or a Mixture-of-Experts block. Reads {@code b.normed}, writes {@code b.projected}.
 *
 * <p>A block whose experts compute elsewhere is run in two halves so the forward pass can work meanwhile:
 * {@link #begin} (the gate, the expert call sent, the router's own share computed) and {@link #finish} (the
 * answers awaited and combined into {@code b.projected}). Calls on different lanes may be in flight at once, each
 * with its own buffers; a dense FFN computes everything in begin.
 */
interface FeedForward {
    void forward(int layer, StepBatch batch, ForwardBuffers b, Compute c, RoutingObserver observer);

    /**
     * Starts the FFN of {@code batch}'s rows on lane {@code lane}.
     *
     * @param stepRows each row's row in the whole step (the batch is one micro-batch of it), or null
     */
    default void begin(int layer, StepBatch batch, ForwardBuffers b, Compute c, RoutingObserver observer, int[] stepRows,
                       int lane) {
        forward(layer, batch, b, c, observer);
    }

    /** Completes the FFN begun on lane {@code lane}: {@code b.projected} holds its output when this returns. */
    default void finish(int layer, StepBatch batch, ForwardBuffers b, Compute c, int lane) {
    }
}
