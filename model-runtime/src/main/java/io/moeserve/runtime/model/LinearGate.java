package io.moeserve.runtime.model;

import io.moeserve.runtime.kernel.MatmulKernels;
import io.moeserve.runtime.kernel.VectorOps;
import io.moeserve.runtime.tensor.WeightMatrix;

/**
 * A gate whose logits are one linear map of the hidden state ({@code gate.weight [E, H]}: every family but
 * MoE++; with a bias in gpt-oss's {@code router}), followed by a per-token selection rule that subclasses supply.
 */
public abstract class LinearGate implements Gate {
    private final WeightMatrix weight;
    private final float[] bias; // or null
    private final GateScratch scratch;
    protected final int numExperts;
    protected final int topK;
    private int[] pruned; // expert ids whose logits are -inf (PrunedExperts), or null

    protected LinearGate(WeightMatrix weight, int topK, GateScratch scratch) {
        this(weight, null, topK, scratch);
    }

    /** @param bias added to the logits, or null */
    protected LinearGate(WeightMatrix weight, float[] bias, int topK, GateScratch scratch) {
        this.weight = weight;
        this.bias = bias;
        this.scratch = scratch;
        this.numExperts = weight.rows();
        this.topK = topK;
    }

    @Override
    public final void route(int n, float[] x, int[] experts, float[] weights, MatmulKernels kernels) {
        kernels.matmul(weight, x, 0, scratch.logits, 0, n);
        if (bias != null) VectorOps.addBias(scratch.logits, n, numExperts, bias);
        if (pruned != null) {
            for (int t = 0; t < n; t++) for (int e : pruned) scratch.logits[t * numExperts + e] = Float.NEGATIVE_INFINITY;
        }
        for (int t = 0; t < n; t++) select(scratch.logits, t * numExperts, scratch.selection, experts, weights, t * topK);
    }

    /** Never picks these experts again: their logits become −∞ ({@link PrunedExperts}); null for none. */
    void prune(int[] experts) {
        this.pruned = experts == null ? null : experts.clone();
    }

    /**
     * Chooses one token's experts from its logits {@code logits[off, off + E)} (left unchanged) into
     * {@code experts/weights[outOff, outOff + k)}; {@code selection} holds 2E floats of scratch.
     */
    protected abstract void select(float[] logits, int off, float[] selection, int[] experts, float[] weights, int outOff);
}
