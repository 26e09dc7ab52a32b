package io.moeserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/** Hand-checked cases of DeepSeek's group-limited rules. */
class GroupLimitedGateTest {
    /** The selection is called directly: the weight only gives the expert count. */
    private static GroupLimitedGate gate(int e, int k, GroupLimitedGate.Config config, float[] bias) {
        var weight = new WeightMatrix("gate", MemorySegment.ofArray(new float[e]), DType.F32, e, 1);
        return new GroupLimitedGate(weight, bias, k, config, new GateScratch(1, e));
    }

    @Test
    void deepseekV3GroupsByTopTwoSumAndWeighsWithUnbiasedScores() {
        // 8 experts, 4 groups of 2, keep 2 groups, top-2. Bias pushes expert 7 (group 3) in for selection only.
        var g = gate(8, 2, new GroupLimitedGate.Config(true, true, 2.5f, 4, 2), new float[] {0, 0, 0, 0, 0, 0, 0, 5f});
        float[] logits = {2f, 1.9f, -3f, -3f, 0.5f, 0.4f, -2f, -1f};
        int[] experts = new int[2];
        float[] weights = new float[2];
        g.select(logits, 0, new float[16], experts, weights, 0);
        // group sums (biased): g0 = σ(2)+σ(1.9) ≈ 1.75, g1 ≈ 0.09, g2 ≈ 1.22, g3 = σ(-2)+σ(-1)+5 ≈ 5.39 → keep g3, g0
        assertArrayEquals(new int[] {7, 0}, experts);
        double s7 = 1 / (1 + Math.exp(1));
        double s0 = 1 / (1 + Math.exp(-2));
        assertEquals(2.5 * s7 / (s7 + s0 + 1e-20), weights[0], 1e-6);
        assertEquals(2.5 * s0 / (s7 + s0 + 1e-20), weights[1], 1e-6);
    }

    @Test
    void deepseekV2GroupLimitedKeepsGroupsByTheirBestExpertAndScales() {
        var g = gate(4, 2, new GroupLimitedGate.Config(false, false, 16f, 2, 1), null);
        float[] logits = {0f, 2.5f, 2f, 2.2f}; // group 1 (experts 2, 3) has the best sum but group 0 the best max
        int[] experts = new int[2];
        float[] weights = new float[2];
        g.select(logits, 0, new float[8], experts, weights, 0);
        assertArrayEquals(new int[] {1, 0}, experts);
        double z = 1 + Math.exp(2.5) + Math.exp(2) + Math.exp(2.2);
        assertEquals(16 * Math.exp(2.5) / z, weights[0], 1e-5);
    }
}
