package io.moeserve.runtime.quantize;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Quantization;
import io.moeserve.runtime.tensor.TensorAccess;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The int2 and int3 quantizer writes the words compressed-tensors' {@code pack_to_int32} writes (checked against
 * words packed by hand), with the scale of its {@code calculate_qparams} ({@code amax / ((2^b − 1) / 2)}), and
 * round-to-nearest codes read back within half a step.
 */
class WeightQuantizerTest {

    @Test
    void int3AndInt2AreThePackedWordsOfCompressedTensors() {
        // Weights chosen so the scale is exactly 1 (amax 3.5 for int3, 1.5 for int2) and rint(w) is the code;
        // −3.5 and −1.5 round half to even, to −4 and −2.
        float[] int3 = {-3.5f, -3, -2, -1, 0, 1, 2, 3, -3.5f, 3, 1, -1};
        assertPacks(TargetFormat.INT3, int3, new int[] {0x38fac688, 0x1d});
        float[] int2 = {-1.5f, -1, 0, 1, 1, 0, -1, -1.5f, 0, 0, 1, 1, -1.5f, -1.5f, -1, -1, 1, -1.5f};
        assertPacks(TargetFormat.INT2, int2, new int[] {0x50fa1be4, 0x3});
    }

    private static void assertPacks(TargetFormat format, float[] row, int[] words) {
        try (Arena arena = Arena.ofConfined()) {
            WeightMatrix w = floats(arena, row, 1, row.length);
            WeightMatrix q = WeightQuantizer.quantize(w, format, row.length, arena);
            assertEquals(4L * words.length, q.rowBytes());
            for (int i = 0; i < words.length; i++) {
                assertEquals(words[i], q.data().get(TensorAccess.I32_LE, 4L * i), format + " word " + i);
            }
            assertEquals(1f, q.quantization().scale(0, 0, 1), format + " scale");
        }
    }

    @Test
    void roundTripsAreWithinHalfAStepAtEveryWidth() {
        Random random = new Random(7);
        int rows = 5, cols = 300, group = 64;
        float[] values = new float[rows * cols];
        for (int i = 0; i < values.length; i++) values[i] = (float) random.nextGaussian();
        try (Arena arena = Arena.ofConfined()) {
            WeightMatrix w = floats(arena, values, rows, cols);
            for (TargetFormat f : new TargetFormat[] {TargetFormat.INT2, TargetFormat.INT3, TargetFormat.INT4, TargetFormat.INT8}) {
                WeightMatrix q = WeightQuantizer.quantize(w, f, group, arena);
                Quantization z = q.quantization();
                assertEquals(f.bits(), z.scheme().bits());
                for (int r = 0; r < rows; r++) {
                    for (int c = 0; c < cols; c++) {
                        float s = z.scale(r, c / group, z.scaleColumns(cols));
                        float x = w.get(r, c);
                        int lo = -(1 << (f.bits() - 1)), hi = (1 << (f.bits() - 1)) - 1;
                        int code = (int) Math.max(lo, Math.min(hi, Math.rint(x / s)));
                        float expected = code * s;
                        assertEquals(expected, q.get(r, c), f + " row " + r + " col " + c);
                        // Inside the range, the nearest step; the clamped top code is within a step of amax.
                        assertEquals(x, q.get(r, c), s, f + " row " + r + " col " + c);
                    }
                }
            }
        }
    }

    private static WeightMatrix floats(Arena arena, float[] values, int rows, int cols) {
        MemorySegment data = arena.allocate(4L * values.length);
        for (int i = 0; i < values.length; i++) data.set(TensorAccess.F32_LE, 4L * i, values[i]);
        return new WeightMatrix("w", data, DType.F32, rows, cols);
    }
}
