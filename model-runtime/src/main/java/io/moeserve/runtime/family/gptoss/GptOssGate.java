package io.moeserve.runtime.family.gptoss;

import io.moeserve.runtime.config.GateConfig;
import io.moeserve.runtime.model.GateScratch;
import io.moeserve.runtime.model.LinearGate;
import io.moeserve.runtime.model.TopK;
import io.moeserve.runtime.tensor.WeightMatrix;

/**
 * gpt-oss's router ({@code GptOssTopKRouter}): logits with a bias, the k largest logits chosen first, then a softmax
 * over those k only, so the weights always sum to one and the experts not chosen never enter the normalisation.
 */
final class GptOssGate extends LinearGate {

    /** No settings beyond top-k: the rule is fixed. */
    record Config() implements GateConfig {
        @Override
        public String describe() {
            return "top-k logits (with bias), softmax over the k";
        }
    }

    GptOssGate(WeightMatrix weight, float[] bias, int topK, GateScratch scratch) {
        super(weight, bias, topK, scratch);
    }

    @Override
    protected void select(float[] logits, int off, float[] selection, int[] experts, float[] weights, int outOff) {
        TopK.select(logits, off, numExperts, topK, experts, outOff);
        // Softmax over the chosen logits, which TopK left in descending order: the first is the maximum.
        float max = logits[off + experts[outOff]];
        float sum = 0f;
        for (int j = 0; j < topK; j++) {
            float e = (float) Math.exp(logits[off + experts[outOff + j]] - max);
            weights[outOff + j] = e;
            sum += e;
        }
        for (int j = 0; j < topK; j++) weights[outOff + j] /= sum;
    }
}
