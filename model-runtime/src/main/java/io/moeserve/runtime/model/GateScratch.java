package io.moeserve.runtime.model;

/**
 * Working memory of the gates of one model, allocated once for the largest step and shared by every layer (layers
 * run one after the other). Internal to the model; filled and read on the forward thread only.
 */
public final class GateScratch {
    /** maxTokens rows of numExperts gate logits. */
    public final float[] logits;
    /** 2 · numExperts floats for one token's selection. */
    public final float[] selection;

    public GateScratch(int maxTokens, int numExperts) {
        this.logits = new float[maxTokens * numExperts];
        this.selection = new float[Math.max(numExperts, 2) * 2];
    }
}
