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
 * at the right and bottom edges, channel and whole-tensor scales. MXFP4, whose shape is fixed (groups of 32 columns,
 * E8M0 scales), has tests of its own: every code at every scale decoded exactly, scales from 2^−127 to 2^127.
 * Runs at every vector width (model-runtime/pom.xml).
 */
class QuantizedKernelDifferentialTest {
    /** rows, cols, blockRows, blockCols. */
    private static final int[][] SHAPES = {
            {1, 1, 1, 1}, {3, 7, 1, 7}, {5, Simd.LANES, 1, 32}, {7, 100, 1, 32}, {17, 100, 1, 24}, {13, 256, 1, 8},
            {33, 257, 1, 128}, {64, 1030, 1, 128}, {37, 300, 3, 5}, {20, 64, 20, 64}, {9, 70, 1, 70},
            {130, 200, 128, 128}, {300, 1000, 128, 128},
            // Groups of 32 and 48 whose last is cut short: at 512 bits the int4 tables' 32-column step, then 16.
            {9, 80, 1, 32}, {6, 96, 1, 48}, {10, 211, 1, 48}, {4, 64, 1, 16},
    };
    private static final int[] TOKENS = {1, 2, 3, 5, 9, 17};
    private static final Parallel TWO_THREADS = new Parallel(2);

    @AfterAll
    static void stopThreads() {
        TWO_THREADS.close();
    }

    @ParameterizedTest
    @EnumSource(value = Scheme.class, mode = EnumSource.Mode.EXCLUDE, names = "MXFP4")
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
    @EnumSource(value = Scheme.class, mode = EnumSource.Mode.EXCLUDE, names = "MXFP4")
    void fusedSwigluAndBatchesKeepTheBits(Scheme scheme) {
        Random random = new Random(5 + scheme.ordinal());
        try (Arena arena = Arena.ofShared()) {
            int rows = 300, cols = 1000;
            WeightMatrix gate = randomQuantized(arena, scheme, rows, cols, 1, 64, scheme.isInteger(), random);
            WeightMatrix up = randomQuantized(arena, scheme, rows, cols, 1, 64, false, random);
            WeightMatrix down = randomQuantized(arena, scheme, cols, rows, 1, 32, false, random);
            assertSwigluAndBatchKeepTheBits(arena, gate, up, down, random, scheme.toString());
        }
    }

    /**
     * A token's result does not depend on its batch: on the int8 and int4 layouts that have a small-batch kernel (and
     * int2, which has not), each token of a 2 to 9 token product has the bits of that token alone, at shapes whose
     * rows do and do not divide by four and whose columns do and do not fill whole vectors.
     */
    @ParameterizedTest
    @EnumSource(value = Scheme.class, names = {"INT8", "PACKED_INT8", "PACKED_INT4", "PACKED_INT2"})
    void aTokensBitsDoNotDependOnItsBatch(Scheme scheme) {
        Random random = new Random(31 + scheme.ordinal());
        try (Arena arena = Arena.ofShared()) {
            for (MatmulKernels fast : new MatmulKernels[] {new CpuMatmulKernels(new Parallel(1)), new CpuMatmulKernels(TWO_THREADS)}) {
                for (int[] s : new int[][] {{37, 96, 32}, {64, 2880, 32}, {13, 203, 96}, {260, 512, 128}}) {
                    WeightMatrix q = randomQuantized(arena, scheme, s[0], s[1], 1, s[2], false, random);
                    for (int n = 2; n <= 9; n++) {
                        float[] x = gaussian(random, n * s[1]);
                        float[] y = new float[n * s[0]];
                        fast.matmul(q, x, 0, y, 0, n);
                        float[] one = new float[s[0]];
                        for (int t = 0; t < n; t++) {
                            fast.matmul(q, x, t * s[1], one, 0, 1);
                            for (int r = 0; r < s[0]; r++) {
                                assertEquals(Float.floatToIntBits(one[r]), Float.floatToIntBits(y[t * s[0] + r]),
                                        fast.name() + " " + scheme + " " + s[0] + "x" + s[1] + " n=" + n + " token " + t + " row " + r);
                            }
                        }
                    }
                }
            }
        }
    }

    /** The conversion loop kept for the benchmark's before and after computes the table lookups' bits. */
    @Test
    void conversionLoopKeptForTheBenchmarkHasTheLookupsBits() {
        Scheme scheme = Scheme.PACKED_INT4;
        Random random = new Random(37);
        try (Arena arena = Arena.ofShared()) {
            for (int[] s : new int[][] {{37, 96, 32}, {20, 2880, 32}, {13, 203, 48}, {8, 64, 16}}) {
                WeightMatrix q = randomQuantized(arena, scheme, s[0], s[1], 1, s[2], false, random);
                float[] x = gaussian(random, 1 + s[1]);
                float[] lookup = new float[s[0] + 2], conversion = new float[s[0] + 2];
                QuantizedKernel.matvec(q, x, 1, lookup, 2, 0, s[0]);
                QuantizedKernel.matvecByConversion(q, x, 1, conversion, 2, 0, s[0]);
                assertBits(conversion, lookup, scheme + " " + s[0] + "x" + s[1] + " groups of " + s[2]);
            }
        }
    }

    /** The fused SwiGLU and a MatvecBatch (SwiGLU, then down) compute what they compute on the dequantized matrices. */
    private static void assertSwigluAndBatchKeepTheBits(Arena arena, WeightMatrix gate, WeightMatrix up, WeightMatrix down,
                                                       Random random, String scheme) {
        CpuMatmulKernels fast = new CpuMatmulKernels(TWO_THREADS);
        int rows = gate.rows(), cols = gate.cols();
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

    @ParameterizedTest
    @EnumSource(value = Scheme.class, mode = EnumSource.Mode.EXCLUDE, names = "MXFP4")
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

    /** rows, cols of MXFP4 matrices: odd row counts, one group, groups not a multiple of 2, gpt-oss's width. */
    private static final int[][] MXFP4_SHAPES = {{1, 32}, {3, 64}, {7, 96}, {16, 160}, {33, 320}, {64, 1024}, {5, 2880}};

    @Test
    void mxfp4ProductsAreThoseOfTheDequantizedMatrix() {
        Random random = new Random(17);
        NaiveMatmulKernels naive = new NaiveMatmulKernels();
        try (Arena arena = Arena.ofShared()) {
            for (MatmulKernels fast : new MatmulKernels[] {new CpuMatmulKernels(new Parallel(1)), new CpuMatmulKernels(TWO_THREADS)}) {
                for (int[] s : MXFP4_SHAPES) {
                    // Moderate scales (2^−9 .. 2^9), then every scale the format has but NaN: weights from 2^−128 to
                    // 6 · 2^127 (infinity), sums that overflow included.
                    for (int[] exponents : new int[][] {{118, 136}, {0, 254}}) {
                        WeightMatrix q = randomMxfp4(arena, s[0], s[1], exponents[0], exponents[1], random);
                        WeightMatrix f = dequantized(arena, q);
                        String where = fast.name() + " MXFP4 " + s[0] + "x" + s[1] + " scales " + exponents[0] + ".." + exponents[1];
                        for (int n : TOKENS) {
                            if (n > 5 && s[1] > 1024) continue; // the naive reference is slow; 1..5 tokens cover the paths
                            float[] x = gaussian(random, 3 + n * s[1]);
                            assertSameBits(fast, q, fast, f, x, n, where + " n=" + n);
                            assertSameBits(naive, q, naive, f, x, n, where + " naive n=" + n);
                        }
                    }
                }
            }
        }
    }

    @Test
    void mxfp4FusedSwigluAndBatchesKeepTheBits() {
        Random random = new Random(23);
        try (Arena arena = Arena.ofShared()) {
            WeightMatrix gate = randomMxfp4(arena, 288, 1024, 118, 136, random);
            WeightMatrix up = randomMxfp4(arena, 288, 1024, 118, 136, random);
            WeightMatrix down = randomMxfp4(arena, 1024, 288, 118, 136, random);
            assertSwigluAndBatchKeepTheBits(arena, gate, up, down, random, "MXFP4");
        }
    }

    /**
     * Each of the 16 codes at each of the 256 scales, against the format's definition written out here (not the
     * runtime's tables): FP4 value times 2^(e − 127) in double, which float32 holds exactly or overflows to infinity;
     * NaN for e = 0xff. Through the scalar formula, the GEMM's panel ({@link QuantizedKernel#widen}), and the
     * one-token kernel with one-hot inputs (in rows of finite weights: 0 · ∞ is NaN).
     */
    @Test
    void everyMxfp4CodeAtEveryScaleDecodesExactly() {
        double[] fp4 = {0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6};
        int rows = 256, cols = 64;
        try (Arena arena = Arena.ofShared()) {
            MemorySegment codes = arena.allocate(rows * cols / 2);
            MemorySegment scales = arena.allocate(rows * cols / 32);
            // Column c of row r holds code (c + r) mod 16, so each code meets each nibble position; both groups of
            // row r have scale byte r.
            for (int r = 0; r < rows; r++) {
                for (int k = 0; k < cols / 2; k++) {
                    int lo = (2 * k + r) % 16, hi = (2 * k + 1 + r) % 16;
                    codes.set(ValueLayout.JAVA_BYTE, (long) r * cols / 2 + k, (byte) (lo | hi << 4));
                }
                for (int g = 0; g < cols / 32; g++) scales.set(ValueLayout.JAVA_BYTE, (long) r * cols / 32 + g, (byte) r);
            }
            WeightMatrix w = new WeightMatrix("all codes", codes, DType.U8, rows, cols,
                    new Quantization(Scheme.MXFP4, scales, DType.U8, 1, 32, null));
            assertEquals("mxfp4", w.formatName());
            float[] panel = new float[cols + Simd.LANES];
            CpuMatmulKernels fast = new CpuMatmulKernels(new Parallel(1));
            float[] y = new float[rows];
            float[][] oneHot = new float[cols][cols];
            for (int c = 0; c < cols; c++) oneHot[c][c] = 1f;
            float[][] products = new float[cols][];
            for (int c = 0; c < cols; c++) {
                fast.matmul(w, oneHot[c], 0, y, 0, 1);
                products[c] = y.clone();
            }
            for (int r = 0; r < rows; r++) {
                QuantizedKernel.widen(w, r, panel, 0, panel.length);
                for (int c = 0; c < cols; c++) {
                    float expected = r == 255 ? Float.NaN : (float) (fp4[(c + r) % 16] * Math.pow(2, r - 127));
                    String where = "scale " + r + " code " + (c + r) % 16;
                    assertEquals(Float.floatToIntBits(expected), Float.floatToIntBits(w.get(r, c)), where + " scalar");
                    assertEquals(Float.floatToIntBits(expected), Float.floatToIntBits(panel[c]), where + " widened");
                    // Rows up to scale 252 hold finite weights only (6 · 2^125); above, 0 · ∞ makes every sum NaN.
                    if (r <= 252) assertEquals(expected, products[c][r], 0f, where + " one-token product");
                }
                for (int c = cols; c < panel.length; c++) assertEquals(0f, panel[c], "padding");
            }
            assertEquals(0x1p-128f, w.get(0, 1), "code 1 at scale 0: 0.5 · 2^-127, a subnormal");
            assertEquals(Float.POSITIVE_INFINITY, w.get(254, 6), "code 4 at scale 254: 2 · 2^127 overflows");
            assertEquals(0x1.8p127f, w.get(254, 5), "code 3 at scale 254: 1.5 · 2^127, the largest finite weight");
        }
    }

    @Test
    void mxfp4RowSlicesAreTheirRows() {
        Random random = new Random(29);
        try (Arena arena = Arena.ofShared()) {
            // Four experts of 6 rows stacked, as gpt-oss's [E, rows, cols / 32, 16] blocks are read.
            WeightMatrix all = randomMxfp4(arena, 24, 96, 110, 140, random);
            for (int e = 0; e < 4; e++) assertSliceIsItsRows(all, 6 * e, 6);
            assertSliceIsItsRows(all, 5, 7);
            WeightMatrix expert = all.rowSlice("expert 2", 12, 6);
            assertEquals(6L * 48 + 6 * 3, expert.byteSize());
            float[] x = gaussian(random, 96);
            float[] yAll = new float[24], yExpert = new float[6];
            CpuMatmulKernels fast = new CpuMatmulKernels(TWO_THREADS);
            fast.matmul(all, x, 0, yAll, 0, 1);
            fast.matmul(expert, x, 0, yExpert, 0, 1);
            for (int r = 0; r < 6; r++) assertEquals(Float.floatToIntBits(yAll[12 + r]), Float.floatToIntBits(yExpert[r]), "row " + r);
        }
    }

    @Test
    void mxfp4RefusesWhatTheFormatCannotHold() {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment scales = arena.allocate(3);
            Quantization mx = new Quantization(Scheme.MXFP4, scales, DType.U8, 1, 32, null);
            assertThrows(IllegalArgumentException.class, () -> new WeightMatrix("w", arena.allocate(3 * 24), DType.U8, 3, 48, mx),
                    "48 columns are not whole groups of 32");
            assertThrows(IllegalArgumentException.class, () -> new WeightMatrix("w", arena.allocate(3 * 16), DType.I32, 3, 32, mx),
                    "codes are bytes");
            assertThrows(IllegalArgumentException.class, () -> new WeightMatrix("w", arena.allocate(3 * 15), DType.U8, 3, 32, mx),
                    "16 bytes per group");
            assertThrows(IllegalArgumentException.class, () -> new Quantization(Scheme.MXFP4, scales, DType.BF16, 1, 32, null),
                    "E8M0 scales are bytes");
            assertThrows(IllegalArgumentException.class, () -> new Quantization(Scheme.MXFP4, scales, DType.U8, 1, 16, null),
                    "groups are 32 columns");
            assertThrows(IllegalArgumentException.class, () -> new Quantization(Scheme.MXFP4, scales, DType.U8, 1, 32, scales),
                    "no zero points");
            assertThrows(IllegalArgumentException.class, () -> new Quantization(Scheme.PACKED_INT4, scales, DType.U8, 1, 32, null),
                    "byte scales are MXFP4's alone");
            assertEquals(16, new WeightMatrix("w", arena.allocate(3 * 16), DType.U8, 3, 32, mx).rowBytes());
        }
    }

    /**
     * A random MXFP4 matrix: random code bytes (all 256 are valid), scale bytes uniform in
     * [minExponent, maxExponent]; one byte of padding before each tensor, as in a safetensors file.
     */
    static WeightMatrix randomMxfp4(Arena arena, int rows, int cols, int minExponent, int maxExponent, Random random) {
        long bytes = (long) rows * cols / 2;
        MemorySegment codes = arena.allocate(bytes + 1).asSlice(1);
        for (long i = 0; i < bytes; i++) codes.set(ValueLayout.JAVA_BYTE, i, (byte) random.nextInt(256));
        long groups = (long) rows * cols / 32;
        MemorySegment scales = arena.allocate(groups + 1).asSlice(1);
        for (long i = 0; i < groups; i++) {
            scales.set(ValueLayout.JAVA_BYTE, i, (byte) (minExponent + random.nextInt(maxExponent - minExponent + 1)));
        }
        return new WeightMatrix("mxfp4", codes, DType.U8, rows, cols, new Quantization(Scheme.MXFP4, scales, DType.U8, 1, 32, null));
    }

    private static void assertSliceIsItsRows(WeightMatrix q, int from, int count) {
        WeightMatrix slice = q.rowSlice("s", from, count);
        for (int r = 0; r < count; r++) {
            for (int c = 0; c < q.cols(); c++) assertEquals(q.get(from + r, c), slice.get(r, c), "row " + r + " col " + c);
        }
    }

    /**
     * Words packed by hand as compressed-tensors' {@code pack_to_int32} packs them (⌊32 / b⌋ codes per int32, column
     * w·p + t at bits [t·b, t·b + b), stored q + 2^(b−1), padding stored 0): the scalar formula, the GEMM's panel and
     * the one-token kernel read the codes back, each times the scale.
     */
    @Test
    void handPackedInt3AndInt2WordsReadAsCompressedTensorsPacksThem() {
        // int3: ten codes in word 0 (0, 1, .., 7, 0, 7 stored), then two and padding: 0x38fac688 and 0x1d.
        assertReadsBack(Scheme.PACKED_INT3, new int[] {0x38fac688, 0x1d}, new int[] {-4, -3, -2, -1, 0, 1, 2, 3, -4, 3, 1, -1});
        // int2: sixteen codes in word 0, then two and padding.
        assertReadsBack(Scheme.PACKED_INT2, new int[] {0x50fa1be4, 0x3},
                new int[] {-2, -1, 0, 1, 1, 0, -1, -2, 0, 0, 1, 1, -2, -2, -1, -1, 1, -2});
    }

    private static void assertReadsBack(Scheme scheme, int[] words, int[] codes) {
        try (Arena arena = Arena.ofConfined()) {
            int cols = codes.length;
            assertEquals(4L * words.length, scheme.rowBytes(cols));
            MemorySegment data = arena.allocate(4L * words.length);
            for (int i = 0; i < words.length; i++) data.set(TensorAccess.I32_LE, 4L * i, words[i]);
            MemorySegment scales = arena.allocate(4);
            scales.set(TensorAccess.F32_LE, 0, 0.5f);
            Quantization q = new Quantization(scheme, scales, DType.F32, 1, cols, null);
            WeightMatrix w = new WeightMatrix("hand-packed", data, DType.I32, 1, cols, q);
            float[] panel = new float[cols + Simd.LANES];
            QuantizedKernel.widen(w, 0, panel, 0, panel.length);
            CpuMatmulKernels fast = new CpuMatmulKernels(new Parallel(1));
            float[] y = new float[1];
            for (int c = 0; c < cols; c++) {
                String where = scheme + " column " + c;
                assertEquals(codes[c], q.code(data, 0, c), where);
                assertEquals(codes[c] * 0.5f, w.get(0, c), where + " scalar");
                assertEquals(codes[c] * 0.5f, panel[c], where + " widened");
                float[] x = new float[cols];
                x[c] = 1f;
                fast.matmul(w, x, 0, y, 0, 1);
                assertEquals(codes[c] * 0.5f, y[0], where + " one-token product");
            }
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
        if (scheme == Scheme.MXFP4) return randomMxfp4(arena, rows, cols, 118, 136, random);
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
