package io.moeserve.runtime.family.moepp;

import io.moeserve.runtime.config.GateConfig;
import io.moeserve.runtime.kernel.MatmulKernels;
import io.moeserve.runtime.kernel.VectorOps;
import io.moeserve.runtime.model.Gate;
import io.moeserve.runtime.model.GateScratch;
import io.moeserve.runtime.model.TopK;
import io.moeserve.runtime.tensor.WeightMatrix;

/**
 * MoE++'s gate (SkyworkAI/MoE-plus-plus, moe-architectures-and-techniques.md §2.1): logits from a two-layer tanh
 * network ({@code wg.0 [8E, H]}, {@code wg.2 [E, 8E]}) or one linear map; from the second MoE layer on, the
 * gating residual {@code gate_map(previous layer's logits)} is added, and the sum is what the next layer receives;
 * optionally the logits are divided by their standard deviation over the experts; then the top 2, whose weights
 * are their softmax probabilities renormalised, where the zero expert (the last id) weighs 0. With
 * {@code moe_use_mixtral_gating}, the top 2 of the raw logits, softmaxed over the two.
 */
final class MoePlusPlusGate implements Gate {
    /**
     * MoE++'s switches, as its config.json names them.
     *
     * @param twoLayerGate     moe_2layer_gate: wg.0, tanh, wg.2 instead of one wg [E, H]
     * @param mixtralGating    moe_use_mixtral_gating: top-2 of raw logits then softmax over them; no zero-expert rule
     * @param logitsNorm       moe_use_logits_norm: divide the logits by their (unbiased) std over experts, times
     *                         gateNormStd
     * @param gateNormStd      moe_gate_norm_std
     * @param expertInputScale the released code multiplies the experts' input by top-k (2) unless
     *                         moe_feature_no_mul_topk or Mixtral gating; the gate's switches decide it, so it is
     *                         read with them
     */
    record Config(boolean twoLayerGate, boolean mixtralGating, boolean logitsNorm, float gateNormStd,
                  float expertInputScale) implements GateConfig {
        @Override
        public String describe() {
            return (mixtralGating ? "MoE++ with Mixtral gating" : "MoE++ top-2 with zero expert")
                    + (twoLayerGate ? ", two-layer" : ", one-layer") + (logitsNorm ? ", logits normalised" : "")
                    + ", gating residual";
        }
    }

    /**
     * Per-model buffers: the two-layer gate's hidden layer (also gate_map's output), and the gating residual, one per
     * lane: a step split into micro-batches runs them layer by layer in turn, and each carries its own tokens' logits
     * to its next layer.
     */
    static final class Buffers {
        final float[] hidden;
        final float[][] residual;

        Buffers(int maxTokens, int numExperts, int lanes) {
            this.hidden = new float[maxTokens * 8 * numExperts];
            this.residual = new float[lanes][maxTokens * numExperts];
        }
    }

    private final Config config;
    private final WeightMatrix first;   // wg.0 [8E, H], or wg [E, H]
    private final WeightMatrix second;  // wg.2 [E, 8E], or null
    private final WeightMatrix gateMap; // [E, E]
    private final boolean addsResidual;
    private final GateScratch scratch;
    private final Buffers buffers;
    private final int numExperts;

    /** @param addsResidual whether an earlier MoE layer left logits to add through gate_map */
    MoePlusPlusGate(Config config, WeightMatrix first, WeightMatrix second, WeightMatrix gateMap, boolean addsResidual,
                    GateScratch scratch, Buffers buffers) {
        this.config = config;
        this.first = first;
        this.second = second;
        this.gateMap = gateMap;
        this.addsResidual = addsResidual;
        this.scratch = scratch;
        this.buffers = buffers;
        this.numExperts = gateMap.rows();
    }

    @Override
    public void route(int n, float[] x, int[] experts, float[] weights, MatmulKernels kernels) {
        route(n, x, experts, weights, kernels, 0);
    }

    @Override
    public void route(int n, float[] x, int[] experts, float[] weights, MatmulKernels kernels, int lane) {
        int e = numExperts;
        float[] residual = buffers.residual[lane];
        float[] logits = scratch.logits;
        if (second != null) {
            kernels.matmul(first, x, 0, buffers.hidden, 0, n);
            for (int i = 0; i < n * first.rows(); i++) buffers.hidden[i] = (float) Math.tanh(buffers.hidden[i]);
            kernels.matmul(second, buffers.hidden, 0, logits, 0, n);
        } else {
            kernels.matmul(first, x, 0, logits, 0, n);
        }
        if (addsResidual) {
            // logits += gate_map(previous logits); the sum is what the next layer receives.
            kernels.matmul(gateMap, residual, 0, buffers.hidden, 0, n);
            for (int i = 0; i < n * e; i++) logits[i] += buffers.hidden[i];
        }
        System.arraycopy(logits, 0, residual, 0, n * e);
        for (int t = 0; t < n; t++) select(logits, t * e, scratch.selection, experts, weights, t * 2);
    }

    private void select(float[] logits, int off, float[] s, int[] experts, float[] weights, int outOff) {
        int e = numExperts;
        System.arraycopy(logits, off, s, 0, e);
        if (config.logitsNorm()) {
            // torch.std is the unbiased (n - 1) estimator.
            double mean = 0;
            for (int i = 0; i < e; i++) mean += s[i];
            mean /= e;
            double var = 0;
            for (int i = 0; i < e; i++) var += (s[i] - mean) * (s[i] - mean);
            float std = (float) Math.sqrt(var / (e - 1));
            float div = std / config.gateNormStd();
            for (int i = 0; i < e; i++) s[i] /= div;
        }
        if (config.mixtralGating()) {
            TopK.select(s, 0, e, 2, experts, outOff);
            float a = s[experts[outOff]];
            float b = s[experts[outOff + 1]];
            float eb = (float) Math.exp(b - a);
            weights[outOff] = 1f / (1f + eb);
            weights[outOff + 1] = eb / (1f + eb);
            return;
        }
        VectorOps.softmax(s, 0, e);
        TopK.select(s, 0, e, 2, experts, outOff);
        for (int j = 0; j < 2; j++) {
            int id = experts[outOff + j];
            weights[outOff + j] = id == MoePlusPlus.zeroExpertId(e) ? 0f : s[id];
        }
        TopK.normalise(weights, outOff, 2, 0f);
    }
}
