package io.moeserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/** Hand-checked cases of the softmax top-k rule. */
class SoftmaxTopKGateTest {
    /** The selection is called directly: the weight only gives the expert count. */
    private static SoftmaxTopKGate gate(int e, int k, boolean norm, float scale) {
        var weight = new WeightMatrix("gate", MemorySegment.ofArray(new float[e]), DType.F32, e, 1);
        return new SoftmaxTopKGate(weight, k, new SoftmaxTopKGate.Config(norm, scale), new GateScratch(1, e));
    }

    @Test
    void renormalisesLikeMixtral() {
        float[] logits = {1f, 3f, 2f, 0f};
        int[] experts = new int[2];
        float[] weights = new float[2];
        gate(4, 2, true, 1f).select(logits, 0, new float[8], experts, weights, 0);
        assertArrayEquals(new int[] {1, 2}, experts);
        // softmax over the selected logits alone: e^3 / (e^3 + e^2)
        assertEquals(1 / (1 + Math.exp(-1)), weights[0], 1e-6);
        assertEquals(1, weights[0] + weights[1], 1e-6);
    }

    @Test
    void withoutRenormalisationWeightsAreRawProbabilities() {
        float[] logits = {1f, 3f, 2f, 0f};
        int[] experts = new int[2];
        float[] weights = new float[2];
        gate(4, 2, false, 1f).select(logits, 0, new float[8], experts, weights, 0);
        double z = Math.exp(1) + Math.exp(3) + Math.exp(2) + 1;
        assertEquals(Math.exp(3) / z, weights[0], 1e-6);
        assertEquals(Math.exp(2) / z, weights[1], 1e-6);
    }

    @Test
    void scalesLikeDeepSeekV2Greedy() {
        float[] logits = {1f, 3f, 2f, 0f};
        int[] experts = new int[2];
        float[] weights = new float[2];
        gate(4, 2, false, 16f).select(logits, 0, new float[8], experts, weights, 0);
        double z = Math.exp(1) + Math.exp(3) + Math.exp(2) + 1;
        assertEquals(16 * Math.exp(3) / z, weights[0], 1e-5);
    }
}
