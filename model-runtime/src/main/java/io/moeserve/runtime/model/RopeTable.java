package io.moeserve.runtime.model;

import io.moeserve.runtime.config.RopeConfig;
import io.moeserve.runtime.kernel.VectorOps;

/**
 * cos and sin of every (position, frequency) pair up to a context length, computed once the way transformers
 * does: the angle pos·inv_freq rounded to float32 (this rounding is visible at late positions, so it must match),
 * then cos/sin, then times the attention factor.
 */
final class RopeTable {
    private final RopeConfig rope;
    private final int half;
    private final int maxPositions;
    private final float[] cos;
    private final float[] sin;

    public RopeTable(RopeConfig rope, int maxPositions) {
        this.rope = rope;
        this.half = rope.rotaryDim() / 2;
        this.maxPositions = maxPositions;
        this.cos = new float[maxPositions * half];
        this.sin = new float[maxPositions * half];
        float factor = (float) rope.attentionFactor();
        for (int p = 0; p < maxPositions; p++) {
            for (int i = 0; i < half; i++) {
                float angle = (float) p * (float) rope.invFreq()[i];
                cos[p * half + i] = (float) Math.cos(angle) * factor;
                sin[p * half + i] = (float) Math.sin(angle) * factor;
            }
        }
    }

    public int maxPositions() {
        return maxPositions;
    }

    /** Rotates one head (at x[off, off + rotaryDim)) to position pos. */
    public void apply(float[] x, int off, int pos) {
        VectorOps.rope(x, off, rope.rotaryDim(), rope.interleaved(), cos, sin, pos * half);
    }
}
