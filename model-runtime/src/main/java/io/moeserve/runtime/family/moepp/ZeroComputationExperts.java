package io.moeserve.runtime.family.moepp;

import io.moeserve.runtime.kernel.VectorOps;
import io.moeserve.runtime.model.RouterSideExperts;
import io.moeserve.runtime.tensor.WeightMatrix;

/**
 * MoE++'s zero-computation experts, computed where the gate runs (they cost less than sending the hidden state to
 * a pod would): the zero expert (the last id) adds nothing; the copy expert (the one before) adds its input; the
 * two constant experts before that add {@code softmax(wg · x) · (x, v)}, a learned mix of the input and a
 * constant vector. Terms are added per token in ascending expert id, after the FFN experts.
 *
 * <p>Not reentrant (one two-float scratch); called on the forward thread.
 */
final class ZeroComputationExperts implements RouterSideExperts {
    private final int hidden;
    private final int firstConstant;
    private final int copy;
    private final int zero;
    private final float[][] constants;          // v of each constant expert [H]
    private final WeightMatrix[] constantGates; // wg of each constant expert [2, H]
    private final float[] mix = new float[2];

    ZeroComputationExperts(int numExperts, int hidden, float[][] constants, WeightMatrix[] constantGates) {
        this.hidden = hidden;
        this.firstConstant = MoePlusPlus.firstConstantExpertId(numExperts);
        this.copy = MoePlusPlus.copyExpertId(numExperts);
        this.zero = MoePlusPlus.zeroExpertId(numExperts);
        this.constants = constants;
        this.constantGates = constantGates;
    }

    @Override
    public void add(int n, int k, float[] x, int[] experts, float[] weights, float[] out) {
        for (int t = 0; t < n; t++) {
            for (int id = firstConstant; id < zero; id++) {
                for (int j = 0; j < k; j++) {
                    if (experts[t * k + j] != id) continue;
                    float w = weights[t * k + j];
                    int off = t * hidden;
                    if (id == copy) {
                        VectorOps.axpy(w, x, off, out, off, hidden);
                    } else {
                        int ci = id - firstConstant;
                        WeightMatrix wg = constantGates[ci];
                        for (int r = 0; r < 2; r++) {
                            float s = 0f;
                            for (int col = 0; col < hidden; col++) s += x[off + col] * wg.get(r, col);
                            mix[r] = s;
                        }
                        VectorOps.softmax(mix, 0, 2);
                        float[] v = constants[ci];
                        for (int col = 0; col < hidden; col++) {
                            out[off + col] += w * (mix[0] * x[off + col] + mix[1] * v[col]);
                        }
                    }
                }
            }
        }
    }
}
