package io.moeserve.runtime.family.moepp;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.moeserve.runtime.kernel.NaiveMatmulKernels;
import io.moeserve.runtime.model.GateScratch;
import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/** Hand-checked cases of MoE++'s gate: the zero expert's weight, and the gating residual between layers. */
class MoePlusPlusGateTest {
    private static WeightMatrix identity(int n) {
        float[] v = new float[n * n];
        for (int i = 0; i < n; i++) v[i * n + i] = 1f;
        return new WeightMatrix("identity", MemorySegment.ofArray(v), DType.F32, n, n);
    }

    @Test
    void zeroExpertGetsNoWeightAndTheOtherGetsAll() {
        // 6 gate outputs: 2 FFN experts, 2 constant, copy (4), zero (5). A one-layer gate wg = identity: logits = x.
        var config = new MoePlusPlusGate.Config(false, false, false, 1f, 2f);
        var gate = new MoePlusPlusGate(config, identity(6), null, identity(6), false, new GateScratch(1, 6),
                new MoePlusPlusGate.Buffers(1, 6, 1));
        int[] experts = new int[2];
        float[] weights = new float[2];
        gate.route(1, new float[] {0f, 1f, 0f, 0f, 0.5f, 3f}, experts, weights, new NaiveMatmulKernels());
        assertArrayEquals(new int[] {5, 1}, experts);
        assertEquals(0f, weights[0]);
        assertEquals(1f, weights[1], 1e-6);
    }

    @Test
    void laterLayersAddThePreviousLayersLogitsThroughGateMap() {
        var config = new MoePlusPlusGate.Config(false, true, false, 1f, 1f);
        var scratch = new GateScratch(1, 5);
        var buffers = new MoePlusPlusGate.Buffers(1, 5, 1);
        var first = new MoePlusPlusGate(config, identity(5), null, identity(5), false, scratch, buffers);
        var second = new MoePlusPlusGate(config, identity(5), null, identity(5), true, scratch, buffers);
        int[] experts = new int[2];
        float[] weights = new float[2];
        first.route(1, new float[] {0f, 0f, 3f, 0f, 0f}, experts, weights, new NaiveMatmulKernels());
        assertEquals(2, experts[0]);
        // Alone, the second layer would pick expert 0; with layer one's logits added through gate_map, expert 2
        // (3 + 1 > 2 + 0).
        second.route(1, new float[] {2f, 0f, 1f, 0f, 0f}, experts, weights, new NaiveMatmulKernels());
        assertArrayEquals(new int[] {2, 0}, experts);
        // Mixtral gating: softmax over the two raw logits (4 and 2).
        assertEquals(1 / (1 + Math.exp(-2)), weights[0], 1e-6);
    }
}
