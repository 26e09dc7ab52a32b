package io.moeserve.runtime.model;

import io.moeserve.runtime.config.GateConfig;
import io.moeserve.runtime.kernel.VectorOps;
import io.moeserve.runtime.tensor.WeightMatrix;

/**
 * DeepSeek's group-limited routing: the experts are split into {@code n_group} groups, only the {@code topk_group}
 * best groups stay, and the top-k is taken among their experts (moe-architectures-and-techniques.md §1.8). Here
 * rather than in the DeepSeek family because GLM-4.5 routes by the same {@code noaux_tc} rule.
 * <ul>
 *   <li>DeepSeek-V2 {@code group_limited_greedy}: softmax scores; a group scores by its best expert; the weights
 *       are the softmax scores, scaled by {@code routed_scaling_factor}, never renormalised.</li>
 *   <li>DeepSeek-V3 and GLM-4.5 {@code noaux_tc}: sigmoid scores; {@code e_score_correction_bias} is added for
 *       selection only; a group scores by the sum of its two best experts; the weights are the unbiased scores,
 *       renormalised (with {@code norm_topk_prob}) and scaled.</li>
 * </ul>
 */
public final class GroupLimitedGate extends LinearGate {
    private final Config config;
    private final float[] scoreBias; // noaux_tc's e_score_correction_bias, else null

    /**
     * @param sigmoid             noaux_tc's sigmoid scores with a selection bias and top-two group scores; else V2's softmax
     * @param normTopkProb        renormalise the selected weights
     * @param routedScalingFactor multiplies the weights
     * @param numGroups           n_group
     * @param topkGroups          topk_group: groups kept per token
     */
    public record Config(boolean sigmoid, boolean normTopkProb, float routedScalingFactor, int numGroups, int topkGroups)
            implements GateConfig {
        @Override
        public String describe() {
            return (sigmoid ? "sigmoid with selection bias" : "softmax") + ", top " + topkGroups + " of " + numGroups
                    + " groups" + (normTopkProb ? ", renormalised" : "") + ", scaled by " + routedScalingFactor;
        }
    }

    public GroupLimitedGate(WeightMatrix weight, float[] scoreBias, int topK, Config config, GateScratch scratch) {
        super(weight, topK, scratch);
        this.config = config;
        this.scoreBias = scoreBias;
    }

    @Override
    protected void select(float[] logits, int off, float[] s, int[] experts, float[] weights, int outOff) {
        int e = numExperts;
        int k = topK;
        if (config.sigmoid()) {
            // s[0, E): the scores; s[E, 2E): the biased scores the selection uses.
            for (int i = 0; i < e; i++) {
                float score = VectorOps.sigmoid(logits[off + i]);
                s[i] = score;
                s[e + i] = score + scoreBias[i];
            }
            maskGroups(s, e, s, e, true);
        } else {
            System.arraycopy(logits, off, s, 0, e);
            VectorOps.softmax(s, 0, e);
            maskGroups(s, 0, s, e, false);
        }
        TopK.select(s, e, e, k, experts, outOff);
        for (int j = 0; j < k; j++) weights[outOff + j] = s[experts[outOff + j]];
        if (config.normTopkProb()) TopK.normalise(weights, outOff, k, 1e-20f);
        TopK.scale(weights, outOff, k, config.routedScalingFactor());
    }

    /**
     * Keeps the topk_group best groups (score = best member, or the sum of the best two) of
     * {@code src[srcOff, srcOff + E)}, writing the masked scores (0 outside kept groups, as HF masks) to
     * {@code dst[E, 2E)}.
     */
    private void maskGroups(float[] src, int srcOff, float[] dst, int e, boolean topTwoSum) {
        int groups = config.numGroups();
        int per = e / groups;
        long keptMask = 0;
        for (int pick = 0; pick < config.topkGroups(); pick++) {
            int best = -1;
            float bestScore = Float.NEGATIVE_INFINITY;
            for (int g = 0; g < groups; g++) {
                if ((keptMask & (1L << g)) != 0) continue;
                float score = groupScore(src, srcOff + g * per, per, topTwoSum);
                if (best < 0 || score > bestScore) {
                    best = g;
                    bestScore = score;
                }
            }
            keptMask |= 1L << best;
        }
        for (int g = 0; g < groups; g++) {
            boolean kept = (keptMask & (1L << g)) != 0;
            for (int i = 0; i < per; i++) dst[e + g * per + i] = kept ? src[srcOff + g * per + i] : 0f;
        }
    }

    private static float groupScore(float[] s, int off, int n, boolean topTwoSum) {
        float first = Float.NEGATIVE_INFINITY;
        float second = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            float v = s[off + i];
            if (v > first) {
                second = first;
                first = v;
            } else if (v > second) {
                second = v;
            }
        }
        return topTwoSum ? first + second : first;
    }
}
