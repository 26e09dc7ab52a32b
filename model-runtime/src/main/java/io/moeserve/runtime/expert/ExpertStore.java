package io.moeserve.runtime.expert;

/** Where an expert executor finds the weights of the experts it hosts. */
public interface ExpertStore {
    /** The weights of expert e of layer l, or null if this store does not host it. */
    ExpertWeights expert(int layer, int expert);

    /** Number of gate outputs per layer (ids range over [0, numExperts)). */
    int numExperts();

    int hiddenSize();

    /** The widest expert FFN, for sizing buffers. */
    int maxIntermediate();
}
