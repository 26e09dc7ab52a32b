package io.moeserve.runtime.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Quantization;
import io.moeserve.runtime.tensor.Quantization.Scheme;
import io.moeserve.runtime.tensor.TensorAccess;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The quantized kernels against the float32 matrix of their dequantized weights ({@link WeightMatrix#get}, the
 * format's formula in scalar): the same bits for every scheme, scale block shape, token count, thread count and
 * entry point, and the same bits as the naive reference on either matrix. Shapes and blocks hit every edge: columns
 * that are not a multiple of the vector width, blocks that straddle vectors or are narrower than one, partial blocks
 * at the right and bottom edges, channel and whole-tensor scales. Runs at every vector width (model-runtime/pom.xml).
 */
class QuantizedKernelDifferentialTest {
    /** rows, cols, blockRows, blockCols. */
    private static final int[][] SHAPES = {
            {1, 1, 1, 1}, {3, 7, 1, 7}, {5, Simd.LANES, 1, 32}, {7, 100, 1, 32}, {17, 100, 1, 24}, {13, 256, 1, 8},
            {33, 257, 1, 128}, {64, 1030, 1, 128}, {37, 300, 3, 5}, {20, 64, 20, 64}, {9, 70, 1, 70},
            {130, 200, 128, 128}, {300, 1000, 128, 128},
    };
    private static final int[] TOKENS = {1, 2, 3, 5, 9, 17};
    private static final Parallel TWO_THREADS = new Parallel(2);

    @AfterAll
    static void stopThreads() {
        TWO_THREADS.close();
    }

    @ParameterizedTest
    @EnumSource(Scheme.class)
    void quantizedProductsAreThoseOfTheDequantizedMatrix(Scheme scheme) {
        Random random = new Random(11 + scheme.ordinal());
        NaiveMatmulKernels naive = new NaiveMatmulKernels();
        try (Arena arena = Arena.ofShared()) {
            for (MatmulKernels fast : new MatmulKernels[] {new CpuMatmulKernels(new Parallel(1)), new CpuMatmulKernels(TWO_THREADS)}) {
                for (int[] s : SHAPES) {
                    for (boolean asymmetric : scheme.isInteger() ? new boolean[] {false, true} : new boolean[] {false}) {
                        WeightMatrix q = randomQuantized(arena, scheme, s[0], s[1], s[2], s[3], asymmetric, random);
                        WeightMatrix f = dequantized(arena, q);
                        String where = fast.name() + " " + scheme + (asymmetric ? " asymmetric " : " ") + s[0] + "x" + s[1]
                                + " blocks " + s[2] + "x" + s[3];
                        for (int n : TOKENS) {
                            float[] x = gaussian(random, 3 + n * s[1]);
                            assertSameBits(fast, q, fast, f, x, n, where + " n=" + n);
                            assertSameBits(naive, q, naive, f, x, n, where + " naive n=" + n);
                        }
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Scheme.class)
    void fusedSwigluAndBatchesKeepTheBits(Scheme scheme) {
        Random random = new Random(5 + scheme.ordinal());
        try (Arena arena = Arena.ofShared()) {
            CpuMatmulKernels fast = new CpuMatmulKernels(TWO_THREADS);
            int rows = 300, cols = 1000;
            WeightMatrix gate = randomQuantized(arena, scheme, rows, cols, 1, 64, scheme.isInteger(), random);
            WeightMatrix up = randomQuantized(arena, scheme, rows, cols, 1, 64, false, random);
            WeightMatrix down = randomQuantized(arena, scheme, cols, rows, 1, 32, false, random);
            float[] x = gaussian(random, cols);
            float[] h = new float[rows], scratch = new float[rows];
            float[] hf = new float[rows], scratchF = new float[rows];
            fast.swiglu(gate, up, x, 0, h, 0, scratch, 0, 1);
            fast.swiglu(dequantized(arena, gate), dequantized(arena, up), x, 0, hf, 0, scratchF, 0, 1);
            assertBits(hf, h, scheme + " swiglu");
            MatvecBatch batch = new MatvecBatch(4);
            float[] hb = new float[rows], sb = new float[rows], yb = new float[cols], y = new float[cols];
            batch.addSwiglu(gate, up, x, 0, hb, 0, sb, 0);
            float[] xd = gaussian(random, rows);
            batch.add(down, xd, 0, yb, 0);
            fast.run(batch);
            fast.matmul(dequantized(arena, down), xd, 0, y, 0, 1);
            assertBits(hf, hb, scheme + " batched swiglu");
            assertBits(y, yb, scheme + " batched down");
        }
    }

    @ParameterizedTest
    @EnumSource(Scheme.class)
    void rowSlicesAtBlockBoundariesAreTheirRows(Scheme scheme) {
        Random random = new Random(3);
        try (Arena arena = Arena.ofShared()) {
            WeightMatrix blocks = randomQuantized(arena, scheme, 48, 40, 8, 16, scheme == Scheme.INT8, random);
            assertSliceIsItsRows(blocks, 16, 24);
            assertSliceIsItsRows(blocks, 40, 8);
            assertThrows(IllegalArgumentException.class, () -> blocks.rowSlice("t", 4, 8), "cuts a scale block");
            if (scheme.isInteger() && scheme != Scheme.INT8) {
                // Packed zero points hold 32 / bits rows of blocks per word: a slice must start at a word.
                int perWord = 32 / scheme.bits();
                WeightMatrix rows = randomQuantized(arena, scheme, 3 * perWord, 40, 1, 16, true, random);
                assertSliceIsItsRows(rows, perWord, 2 * perWord);
                assertThrows(IllegalArgumentException.class, () -> rows.rowSlice("u", 1, perWord), "cuts a zero-point word");
            }
        }
    }

    private static void assertSliceIsItsRows(WeightMatrix q, int from, int count) {
        WeightMatrix slice = q.rowSlice("s", from, count);
        for (int r = 0; r < count; r++) {
            for (int c = 0; c < q.cols(); c++) assertEquals(q.get(from + r, c), slice.get(r, c), "row " + r + " col " + c);
        }
    }

    @Test
    void everyFp8CodeDecodesAsTheScalarRule() {
        try (Arena arena = Arena.ofShared()) {
            int cols = 256 + 3;
            MemorySegment codes = arena.allocate(cols);
            for (int c = 0; c < cols; c++) codes.set(ValueLayout.JAVA_BYTE, c, (byte) c);
            MemorySegment scales = arena.allocate(4);
            scales.set(TensorAccess.F32_LE, 0, 0.75f);
            WeightMatrix w = new WeightMatrix("all codes", codes, DType.F8_E4M3, 1, cols,
                    new Quantization(Scheme.E4M3, scales, DType.F32, 1, cols, null));
            float[] row = new float[cols + Simd.LANES];
            QuantizedKernel.widen(w, 0, row, 0, row.length);
            for (int c = 0; c < cols; c++) {
                float expected = TensorAccess.e4m3ToFloat(c & 0xff) * 0.75f;
                assertEquals(Float.floatToIntBits(expected), Float.floatToIntBits(row[c]), "code " + (c & 0xff));
            }
            assertTrue(Float.isNaN(row[0x7f]) && Float.isNaN(row[0xff]));
            assertEquals(448f * 0.75f, row[0x7e]);
            assertEquals(0x1p-9f * 0.75f, row[1]);
            assertEquals(-0f, row[0x80]);
        }
    }

    private static void assertSameBits(MatmulKernels a, WeightMatrix wa, MatmulKernels b, WeightMatrix wb, float[] x, int n,
                                       String where) {
        int yOff = 2;
        float[] ya = new float[yOff + n * wa.rows() + 1];
        float[] yb = new float[ya.length];
        a.matmul(wa, x, 3, ya, yOff, n);
        b.matmul(wb, x, 3, yb, yOff, n);
        assertBits(yb, ya, where);
    }

    private static void assertBits(float[] expected, float[] actual, String where) {
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToIntBits(expected[i]) != Float.floatToIntBits(actual[i])) {
                throw new AssertionError(where + ": element " + i + " expected " + expected[i] + " got " + actual[i]);
            }
        }
    }

    private static float[] gaussian(Random random, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) random.nextGaussian();
        return x;
    }

    /** The float32 matrix of q's dequantized weights. */
    static WeightMatrix dequantized(Arena arena, WeightMatrix q) {
        MemorySegment data = arena.allocate(4L * q.rows() * q.cols());
        for (int r = 0; r < q.rows(); r++) {
            for (int c = 0; c < q.cols(); c++) data.set(TensorAccess.F32_LE, 4L * ((long) r * q.cols() + c), q.get(r, c));
        }
        return new WeightMatrix(q.name() + " dequantized", data, DType.F32, q.rows(), q.cols());
    }

    /**
     * Random codes (no FP8 NaNs), scales between 0.01 and 0.1 in a dtype that varies with the shape, and, when
     * asymmetric, random zero points; one byte of padding before each tensor, as in a safetensors file.
     */
    static WeightMatrix randomQuantized(Arena arena, Scheme scheme, int rows, int cols, int blockRows, int blockCols,
                                        boolean asymmetric, Random random) {
        long bytes = rows * scheme.rowBytes(cols);
        MemorySegment codes = arena.allocate(bytes + 1).asSlice(1);
        for (long i = 0; i < bytes; i++) {
            int b = random.nextInt(256);
            if (scheme == Scheme.E4M3 && (b & 0x7f) == 0x7f) b--;
            codes.set(ValueLayout.JAVA_BYTE, i, (byte) b);
        }
        DType[] scaleTypes = {DType.F32, DType.BF16, DType.F16};
        DType scaleType = scaleTypes[(rows + cols) % 3];
        Quantization shape = new Quantization(scheme, MemorySegment.NULL, DType.F32, blockRows, blockCols, null);
        long scaleCount = (long) shape.scaleRows(rows) * shape.scaleColumns(cols);
        MemorySegment scales = arena.allocate(scaleCount * scaleType.byteSize() + 1).asSlice(1);
        for (long i = 0; i < scaleCount; i++) TensorAccess.setFloat(scales, scaleType, i, 0.01f + 0.09f * random.nextFloat());
        MemorySegment zp = null;
        if (asymmetric) {
            long zpBytes = new Quantization(scheme, MemorySegment.NULL, DType.F32, blockRows, blockCols, MemorySegment.NULL)
                    .zeroPointBytes(rows, cols);
            zp = arena.allocate(zpBytes + 1).asSlice(1);
            for (long i = 0; i < zpBytes; i++) zp.set(ValueLayout.JAVA_BYTE, i, (byte) random.nextInt(256));
        }
        return new WeightMatrix("q", codes, scheme.storage(), rows, cols,
                new Quantization(scheme, scales, scaleType, blockRows, blockCols, zp));
    }
}
