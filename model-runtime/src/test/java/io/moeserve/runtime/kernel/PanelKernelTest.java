package io.moeserve.runtime.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.tensor.Quantization.Scheme;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.Arena;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The panel kernel (int8 activations) against its naive reference ({@link PanelKernel#referenceRow}, codes read by
 * the format's decoder): the same bits at every vector width (model-runtime/pom.xml runs this class at 128, 256 and
 * 512 bits), row count (whole panels and not), column count, group size, scale dtype, thread count, token count and
 * entry point (plain, fused SwiGLU, batch); and within the error the activations' rounding allows of the exact
 * product of the dequantized weights.
 */
class PanelKernelTest {
    private static final int H = PanelKernel.HEIGHT;
    private static final int[] ROWS = {1, 7, H - 1, H, H + 1, 3 * H + 5};
    private static final int[] COLS = {32, 64, 2816};
    private static final Parallel TWO_THREADS = new Parallel(2);

    @AfterAll
    static void stopThreads() {
        TWO_THREADS.close();
    }

    @ParameterizedTest
    @EnumSource(value = Scheme.class, names = {"INT8", "PACKED_INT8", "PACKED_INT4"})
    void kernelMatchesTheReferenceBitForBit(Scheme scheme) {
        Random random = new Random(3 + scheme.ordinal());
        try (Arena arena = Arena.ofShared()) {
            for (MatmulKernels kernels : new MatmulKernels[] {new CpuMatmulKernels(new Parallel(1)), new CpuMatmulKernels(TWO_THREADS)}) {
                for (int rows : ROWS) {
                    for (int cols : COLS) {
                        for (int group : new int[] {32, 64, 128, cols}) {
                            WeightMatrix w = PanelKernel.repack(QuantizedKernelDifferentialTest.randomQuantized(arena, scheme, rows,
                                    cols, 1, group, false, random));
                            assertNotNull(w.panels(), scheme + " " + rows + "x" + cols + " group " + group);
                            String where = kernels.name() + " " + scheme + " " + rows + "x" + cols + " group " + group + " scales "
                                    + w.quantization().scaleType();
                            float[] x = activations(random, cols);
                            float[] y = new float[rows];
                            kernels.matmul(w, x, 0, y, 0, 1);
                            Int8Activations a = new Int8Activations();
                            a.quantize(x, 0, cols);
                            for (int r = 0; r < rows; r++) {
                                assertEquals(Float.floatToRawIntBits(PanelKernel.referenceRow(w, a, r)), Float.floatToRawIntBits(y[r]),
                                        where + " row " + r);
                            }
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = Scheme.class, names = {"INT8", "PACKED_INT8", "PACKED_INT4"})
    void aTokensResultDoesNotDependOnItsBatch(Scheme scheme) {
        Random random = new Random(17 + scheme.ordinal());
        try (Arena arena = Arena.ofShared()) {
            // One panel (two threads split the tokens) and three (they split the rows); tiles of 4 tokens and the rest.
            for (int rows : new int[] {H - 1, 2 * H + 3}) {
                int cols = 320;
                WeightMatrix w = PanelKernel.repack(QuantizedKernelDifferentialTest.randomQuantized(arena, scheme, rows, cols, 1, 64,
                        false, random));
                for (MatmulKernels kernels : new MatmulKernels[] {new CpuMatmulKernels(new Parallel(1)), new CpuMatmulKernels(TWO_THREADS)}) {
                    for (int n : new int[] {2, 3, 4, 5, 9, 17, 40}) {
                        float[] x = activations(random, n * cols);
                        float[] batch = new float[n * rows];
                        kernels.matmul(w, x, 0, batch, 0, n);
                        for (int t = 0; t < n; t++) {
                            float[] one = new float[rows];
                            kernels.matmul(w, x, t * cols, one, 0, 1);
                            for (int r = 0; r < rows; r++) {
                                assertEquals(Float.floatToRawIntBits(one[r]), Float.floatToRawIntBits(batch[t * rows + r]),
                                        kernels.name() + " " + scheme + " " + rows + " rows n=" + n + " token " + t + " row " + r);
                            }
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = Scheme.class, names = {"INT8", "PACKED_INT8", "PACKED_INT4"})
    void fusedSwigluAndBatchesKeepTheBits(Scheme scheme) {
        Random random = new Random(29 + scheme.ordinal());
        try (Arena arena = Arena.ofShared()) {
            int rows = 5 * H + 1, cols = 2816;
            WeightMatrix gate = PanelKernel.repack(QuantizedKernelDifferentialTest.randomQuantized(arena, scheme, rows, cols, 1, 32,
                    false, random));
            WeightMatrix up = PanelKernel.repack(QuantizedKernelDifferentialTest.randomQuantized(arena, scheme, rows, cols, 1, 128,
                    false, random));
            // Down without panels: a batch mixes both paths.
            WeightMatrix down = QuantizedKernelDifferentialTest.randomQuantized(arena, scheme, cols, rows, 1, 8, false, random);
            CpuMatmulKernels kernels = new CpuMatmulKernels(TWO_THREADS);
            float[] x = activations(random, cols);
            float[] g = new float[rows], u = new float[rows], expected = new float[rows];
            kernels.matmul(gate, x, 0, g, 0, 1);
            kernels.matmul(up, x, 0, u, 0, 1);
            System.arraycopy(g, 0, expected, 0, rows);
            VectorOps.swiglu(expected, 0, u, 0, rows);
            float[] h = new float[rows], scratch = new float[rows];
            kernels.swiglu(gate, up, x, 0, h, 0, scratch, 0, 1);
            assertBits(expected, h, scheme + " fused SwiGLU");
            float[] xd = activations(random, rows);
            float[] d = new float[cols];
            kernels.matmul(down, xd, 0, d, 0, 1);
            MatvecBatch batch = new MatvecBatch(3);
            float[] h2 = new float[rows], s2 = new float[rows], g2 = new float[rows], d2 = new float[cols];
            batch.addSwiglu(gate, up, x, 0, h2, 0, s2, 0);
            batch.add(gate, x, 0, g2, 0);
            batch.add(down, xd, 0, d2, 0);
            kernels.run(batch);
            assertBits(expected, h2, scheme + " batch SwiGLU");
            assertBits(g, g2, scheme + " batch product");
            assertBits(d, d2, scheme + " batch product without panels");
        }
    }

    /**
     * Against the exact product of the dequantized weights: each activation is off by at most d/2 (d its block's
     * scale), so the product is off by at most Σ_c |w_c| · d(c) / 2, plus float32 rounding of the two sums (a
     * relative 1e-5 of Σ |w_c · x_c| is far above it for these lengths).
     */
    @ParameterizedTest
    @EnumSource(value = Scheme.class, names = {"INT8", "PACKED_INT8", "PACKED_INT4"})
    void staysWithinTheActivationRoundingOfTheExactProduct(Scheme scheme) {
        Random random = new Random(41 + scheme.ordinal());
        try (Arena arena = Arena.ofShared()) {
            int rows = 3 * H + 2, cols = 2816;
            WeightMatrix exact = QuantizedKernelDifferentialTest.randomQuantized(arena, scheme, rows, cols, 1, 128, false, random);
            WeightMatrix w = PanelKernel.repack(exact);
            CpuMatmulKernels kernels = new CpuMatmulKernels(new Parallel(1));
            float[] x = activations(random, cols);
            float[] y = new float[rows], z = new float[rows];
            kernels.matmul(w, x, 0, y, 0, 1);
            kernels.matmul(exact, x, 0, z, 0, 1);
            Int8Activations a = new Int8Activations();
            a.quantize(x, 0, cols);
            for (int r = 0; r < rows; r++) {
                double rounding = 0, magnitude = 0;
                for (int c = 0; c < cols; c++) {
                    float wc = exact.get(r, c);
                    rounding += Math.abs(wc) * a.scales[c / 32] / 2;
                    magnitude += Math.abs(wc * x[c]);
                }
                double bound = rounding + 1e-5 * magnitude;
                assertTrue(Math.abs(y[r] - z[r]) <= bound, scheme + " row " + r + ": " + y[r] + " vs exact " + z[r] + ", bound " + bound);
            }
        }
    }

    @Test
    void quantizationRoundsHalfAwayFromZeroPerBlock() {
        assertEquals(1, Int8Activations.roundHalfAway(0.5f));
        assertEquals(-1, Int8Activations.roundHalfAway(-0.5f));
        assertEquals(3, Int8Activations.roundHalfAway(2.5f));
        assertEquals(0, Int8Activations.roundHalfAway(0.49999997f));
        assertEquals(-2, Int8Activations.roundHalfAway(-1.5f));
        assertEquals(127, Int8Activations.roundHalfAway(127f));
        float[] x = new float[96];
        // Block 0 all zero; block 1 one huge value among small ones; block 2 an exact ramp.
        for (int j = 0; j < 32; j++) x[32 + j] = 1e-3f * (j - 16);
        x[40] = -3e30f;
        for (int j = 0; j < 32; j++) x[64 + j] = (j - 16) * 0.25f;
        Int8Activations a = new Int8Activations();
        a.quantize(x, 0, 96);
        assertEquals(0f, a.scales[0]);
        for (int j = 0; j < 32; j++) assertEquals(0, a.codes[j]);
        assertEquals(3e30f / 127f, a.scales[1]);
        assertEquals(-127, a.codes[40]);
        for (int j = 32; j < 64; j++) if (j != 40) assertEquals(0, a.codes[j], "column " + j);
        assertEquals(4f / 127f, a.scales[2]);
        int even = 0;
        for (int j = 0; j < 32; j++) {
            int expected = Int8Activations.roundHalfAway(x[64 + j] / (4f / 127f));
            assertEquals(expected, a.codes[64 + j], "column " + (64 + j));
            if (j % 2 == 0) even += expected;
        }
        assertEquals(-127, a.codes[64]);
        assertEquals(even, a.evenSums[2]);
    }

    @Test
    void extremeCodesAndActivationsStayExact() {
        Random random = new Random(5);
        try (Arena arena = Arena.ofShared()) {
            for (Scheme scheme : new Scheme[] {Scheme.INT8, Scheme.PACKED_INT8, Scheme.PACKED_INT4}) {
                WeightMatrix w = QuantizedKernelDifferentialTest.randomQuantized(arena, scheme, H + 3, 64, 1, 32, false, random);
                // Every code the most negative (-128 or -8): the largest products of the 16-bit sums.
                w.data().fill(scheme == Scheme.INT8 ? (byte) -128 : 0);
                WeightMatrix p = PanelKernel.repack(w);
                float[] x = new float[64];
                for (int c = 0; c < 64; c++) x[c] = c < 32 ? -7f : 1e20f;
                float[] y = new float[w.rows()];
                new CpuMatmulKernels(new Parallel(1)).matmul(p, x, 0, y, 0, 1);
                Int8Activations a = new Int8Activations();
                a.quantize(x, 0, 64);
                int code = scheme == Scheme.PACKED_INT4 ? -8 : -128;
                for (int r = 0; r < w.rows(); r++) {
                    float s0 = w.get(r, 0) / code, s1 = w.get(r, 32) / code;
                    float expected = Math.fma(32f * code * 127, s1 * a.scales[1], Math.fma(32f * code * -127, s0 * a.scales[0], 0f));
                    assertEquals(expected, y[r], scheme + " row " + r);
                    assertEquals(Float.floatToRawIntBits(PanelKernel.referenceRow(w, a, r)), Float.floatToRawIntBits(y[r]));
                }
            }
        }
    }

    @Test
    void otherLayoutsKeepTheExactPath() {
        Random random = new Random(9);
        try (Arena arena = Arena.ofShared()) {
            WeightMatrix asymmetric = QuantizedKernelDifferentialTest.randomQuantized(arena, Scheme.PACKED_INT4, 8, 64, 1, 32, true, random);
            WeightMatrix tall = QuantizedKernelDifferentialTest.randomQuantized(arena, Scheme.INT8, 8, 64, 2, 32, false, random);
            WeightMatrix narrow = QuantizedKernelDifferentialTest.randomQuantized(arena, Scheme.INT8, 8, 48, 1, 48, false, random);
            WeightMatrix oddGroups = QuantizedKernelDifferentialTest.randomQuantized(arena, Scheme.INT8, 8, 96, 1, 48, false, random);
            WeightMatrix int2 = QuantizedKernelDifferentialTest.randomQuantized(arena, Scheme.PACKED_INT2, 8, 64, 1, 32, false, random);
            WeightMatrix fp8 = QuantizedKernelDifferentialTest.randomQuantized(arena, Scheme.E4M3, 8, 64, 1, 32, false, random);
            for (WeightMatrix w : new WeightMatrix[] {asymmetric, tall, narrow, oddGroups, int2, fp8}) {
                assertFalse(PanelKernel.repackable(w));
                assertSame(w, PanelKernel.repack(w));
                assertNull(w.panels());
            }
            assertTrue(PanelKernel.repackable(QuantizedKernelDifferentialTest.randomQuantized(arena, Scheme.INT8, 8, 96, 1, 96, false,
                    random)));
        }
    }

    /** Gaussian activations with an all-zero block and a block with one huge value, where there is room. */
    private static float[] activations(Random random, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) random.nextGaussian();
        if (n >= 96) {
            for (int i = 32; i < 64; i++) x[i] = 0f;
            x[70] = 1e4f;
        }
        return x;
    }

    private static void assertBits(float[] expected, float[] actual, String where) {
        for (int i = 0; i < expected.length; i++) {
            assertEquals(Float.floatToRawIntBits(expected[i]), Float.floatToRawIntBits(actual[i]), where + " at " + i);
        }
    }
}
