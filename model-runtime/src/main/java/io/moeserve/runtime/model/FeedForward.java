package io.moeserve.runtime.model;

/** One layer's FFN: a dense MLP or a Mixture-of-Experts block. Reads {@code b.normed}, writes {@code b.projected}. */
interface FeedForward {
    void forward(int layer, StepBatch batch, ForwardBuffers b, Compute c, RoutingObserver observer);
}
