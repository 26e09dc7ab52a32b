package io.moeserve.runtime.expert;

/** Where an expert executor finds the weights of the experts it hosts. */
public interface ExpertStore {
    /** The weights of expert e of layer l, or null if this store does not host it. */
    ExpertWeights expert(int layer, int expert);

    /**
     * Number of routed FFN experts per layer, the ids executors are called with ([0, numExperts)): a merged
     * checkpoint's merged experts, fewer than the gate's outputs.
     */
    int numExperts();

    int hiddenSize();

    /** The widest expert FFN, for sizing buffers. */
    int maxIntermediate();
}
