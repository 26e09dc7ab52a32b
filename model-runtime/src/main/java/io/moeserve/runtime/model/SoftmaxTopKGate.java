package io.moeserve.runtime.model;

import io.moeserve.runtime.config.GateConfig;
import io.moeserve.runtime.kernel.VectorOps;
import io.moeserve.runtime.tensor.WeightMatrix;

/**
 * Softmax over all experts, the k most probable, optionally renormalised and scaled: the gate of Mixtral, Qwen2-MoE,
 * Qwen3-MoE, OLMoE and DeepSeek-V2's greedy routing (moe-architectures-and-techniques.md §1.8).
 */
public final class SoftmaxTopKGate extends LinearGate {
    private final Config config;

    /**
     * @param normTopkProb        renormalise the selected probabilities to sum to 1
     * @param routedScalingFactor multiplies the weights (DeepSeek-V2); 1 elsewhere
     */
    public record Config(boolean normTopkProb, float routedScalingFactor) implements GateConfig {
        @Override
        public String describe() {
            return "softmax top-k" + (normTopkProb ? ", renormalised" : "")
                    + (routedScalingFactor != 1f ? ", scaled by " + routedScalingFactor : "");
        }
    }

    public SoftmaxTopKGate(WeightMatrix weight, int topK, Config config, GateScratch scratch) {
        super(weight, topK, scratch);
        this.config = config;
    }

    @Override
    protected void select(float[] logits, int off, float[] selection, int[] experts, float[] weights, int outOff) {
        System.arraycopy(logits, off, selection, 0, numExperts);
        VectorOps.softmax(selection, 0, numExperts);
        TopK.select(selection, 0, numExperts, topK, experts, outOff);
        for (int j = 0; j < topK; j++) weights[outOff + j] = selection[experts[outOff + j]];
        if (config.normTopkProb()) TopK.normalise(weights, outOff, topK, 0f);
        TopK.scale(weights, outOff, topK, config.routedScalingFactor());
    }
}
