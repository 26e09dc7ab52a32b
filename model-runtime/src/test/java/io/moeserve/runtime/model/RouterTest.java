package io.moeserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** Hand-checked routing cases for each rule. */
class RouterTest {
    private static MoeConfig config(MoeConfig.RouterKind kind, int e, int k, boolean norm, float scale, int groups, int topkGroups) {
        return new MoeConfig(e, e, k, 4, kind, norm, scale, groups, topkGroups, 0, false, null);
    }

    @Test
    void softmaxTopKRenormalisesLikeMixtral() {
        Router r = new Router(config(MoeConfig.RouterKind.SOFTMAX_TOPK, 4, 2, true, 1f, 1, 1), null);
        float[] logits = {1f, 3f, 2f, 0f};
        int[] experts = new int[2];
        float[] weights = new float[2];
        r.route(logits, 0, new float[8], experts, weights, 0);
        assertArrayEquals(new int[] {1, 2}, experts);
        // softmax over the selected logits alone: e^3 / (e^3 + e^2)
        assertEquals(1 / (1 + Math.exp(-1)), weights[0], 1e-6);
        assertEquals(1, weights[0] + weights[1], 1e-6);
    }

    @Test
    void withoutRenormalisationWeightsAreRawProbabilities() {
        Router r = new Router(config(MoeConfig.RouterKind.SOFTMAX_TOPK, 4, 2, false, 1f, 1, 1), null);
        float[] logits = {1f, 3f, 2f, 0f};
        int[] experts = new int[2];
        float[] weights = new float[2];
        r.route(logits, 0, new float[8], experts, weights, 0);
        double z = Math.exp(1) + Math.exp(3) + Math.exp(2) + 1;
        assertEquals(Math.exp(3) / z, weights[0], 1e-6);
        assertEquals(Math.exp(2) / z, weights[1], 1e-6);
    }

    @Test
    void deepseekV3GroupsByTopTwoSumAndWeighsWithUnbiasedScores() {
        // 8 experts, 4 groups of 2, keep 2 groups, top-2. Bias pushes expert 7 (group 3) in for selection only.
        Router r = new Router(config(MoeConfig.RouterKind.SIGMOID_GROUP_LIMITED, 8, 2, true, 2.5f, 4, 2),
                new float[] {0, 0, 0, 0, 0, 0, 0, 5f});
        float[] logits = {2f, 1.9f, -3f, -3f, 0.5f, 0.4f, -2f, -1f};
        int[] experts = new int[2];
        float[] weights = new float[2];
        r.route(logits, 0, new float[16], experts, weights, 0);
        // group sums (biased): g0 = σ(2)+σ(1.9) ≈ 1.75, g1 ≈ 0.09, g2 ≈ 1.22, g3 = σ(-2)+σ(-1)+5 ≈ 5.39 → keep g3, g0
        assertArrayEquals(new int[] {7, 0}, experts);
        double s7 = 1 / (1 + Math.exp(1));
        double s0 = 1 / (1 + Math.exp(-2));
        assertEquals(2.5 * s7 / (s7 + s0 + 1e-20), weights[0], 1e-6);
        assertEquals(2.5 * s0 / (s7 + s0 + 1e-20), weights[1], 1e-6);
    }

    @Test
    void deepseekV2GroupLimitedKeepsGroupsByTheirBestExpertAndScales() {
        Router r = new Router(config(MoeConfig.RouterKind.SOFTMAX_GROUP_LIMITED, 4, 2, false, 16f, 2, 1), null);
        float[] logits = {0f, 2.5f, 2f, 2.2f}; // group 1 (experts 2, 3) has the best sum but group 0 the best max
        int[] experts = new int[2];
        float[] weights = new float[2];
        r.route(logits, 0, new float[8], experts, weights, 0);
        assertArrayEquals(new int[] {1, 0}, experts);
        double z = 1 + Math.exp(2.5) + Math.exp(2) + Math.exp(2.2);
        assertEquals(16 * Math.exp(2.5) / z, weights[0], 1e-5);
    }

    @Test
    void moePlusPlusZeroExpertGetsNoWeightAndTheOtherGetsAll() {
        var pp = new MoeConfig.MoePlusPlus(true, false, false, 1f, 2f);
        MoeConfig m = new MoeConfig(6, 2, 2, 4, MoeConfig.RouterKind.MOE_PLUS_PLUS, true, 1f, 1, 1, 0, false, pp);
        Router r = new Router(m, null);
        float[] logits = {0f, 1f, 0f, 0f, 0.5f, 3f}; // expert 5 is the zero expert
        int[] experts = new int[2];
        float[] weights = new float[2];
        r.route(logits, 0, new float[12], experts, weights, 0);
        assertArrayEquals(new int[] {5, 1}, experts);
        assertEquals(0f, weights[0]);
        assertEquals(1f, weights[1], 1e-6);
    }
}
