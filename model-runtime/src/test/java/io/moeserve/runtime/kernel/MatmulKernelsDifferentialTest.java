package io.moeserve.runtime.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.TensorAccess;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The Vector API kernels against {@link NaiveMatmulKernels}, for every weight dtype, over shapes chosen to hit each
 * edge of the fast paths: columns that are not a multiple of the vector width, rows and token counts that leave
 * partial GEMM tiles, offsets into shared buffers, products large enough to be split across threads. The two may
 * differ only by float32 summation order, so the tolerance scales with Σ|x·w|. Weights live in shared arenas, as
 * mapped checkpoints do: a confined segment would keep every product on the calling thread.
 */
class MatmulKernelsDifferentialTest {
    private static final int[][] SHAPES = {
            {1, 1}, {3, 7}, {5, Simd.LANES}, {7, Simd.LANES + 1}, {13, 64}, {17, 100}, {33, 257}, {64, 1030}, {300, 1000},
    };
    private static final int[] TOKENS = {1, 2, 3, 4, 5, 8, 9, 17};
    private static final Parallel TWO_THREADS = new Parallel(2);

    @AfterAll
    static void stopThreads() {
        TWO_THREADS.close();
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void fastKernelsMatchTheNaiveReference(DType dtype) {
        NaiveMatmulKernels naive = new NaiveMatmulKernels();
        Random random = new Random(7 + dtype.ordinal());
        try (Arena arena = Arena.ofShared()) {
            for (MatmulKernels fast : new MatmulKernels[] {new CpuMatmulKernels(new Parallel(1)), new CpuMatmulKernels(TWO_THREADS)}) {
                for (int[] shape : SHAPES) {
                    WeightMatrix w = randomMatrix(arena, dtype, shape[0], shape[1], random);
                    for (int n : TOKENS) {
                        int xOff = 3;
                        int yOff = 5;
                        float[] x = new float[xOff + n * w.cols() + 2];
                        for (int i = 0; i < x.length; i++) x[i] = (float) random.nextGaussian();
                        float[] expected = new float[yOff + n * w.rows() + 4];
                        float[] actual = new float[expected.length];
                        Arrays.fill(actual, Float.NaN);
                        naive.matmul(w, x, xOff, expected, yOff, n);
                        fast.matmul(w, x, xOff, actual, yOff, n);
                        String where = fast.name() + " " + dtype + " " + w.rows() + "x" + w.cols() + " n=" + n;
                        for (int i = 0; i < actual.length; i++) {
                            boolean inside = i >= yOff && i < yOff + n * w.rows();
                            if (!inside) {
                                assertTrue(Float.isNaN(actual[i]), where + ": wrote outside its output rows at " + i);
                                continue;
                            }
                            int t = (i - yOff) / w.rows();
                            int r = (i - yOff) % w.rows();
                            double magnitude = 0;
                            for (int c = 0; c < w.cols(); c++) magnitude += Math.abs(x[xOff + t * w.cols() + c] * w.get(r, c));
                            double tolerance = 1e-5 * magnitude + 1e-30;
                            if (!(Math.abs(expected[i] - actual[i]) <= tolerance)) { // NaN fails too
                                fail(where + ": token " + t + " row " + r + " expected " + expected[i] + " got " + actual[i]
                                        + " (tolerance " + tolerance + ")");
                            }
                        }
                    }
                }
            }
        }
    }

    @Test
    void theSameProductGivesTheSameBitsOnOneThreadOrTwo() {
        // Splitting rows over threads must not change any output (splitting experts over pods relies on it).
        try (Arena arena = Arena.ofShared()) {
            WeightMatrix w = randomMatrix(arena, DType.BF16, 300, 1000, new Random(3));
            float[] x = new float[7 * 1000];
            Random random = new Random(4);
            for (int i = 0; i < x.length; i++) x[i] = (float) random.nextGaussian();
            for (int n : new int[] {1, 7}) {
                float[] one = new float[n * 300];
                float[] two = new float[n * 300];
                new CpuMatmulKernels(new Parallel(1)).matmul(w, x, 0, one, 0, n);
                new CpuMatmulKernels(TWO_THREADS).matmul(w, x, 0, two, 0, n);
                assertTrue(Arrays.equals(one, two), "n=" + n);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void theFusedSwigluGivesTheBitsOfTheProductsItReplaces(DType dtype) {
        Random random = new Random(11 + dtype.ordinal());
        try (Arena arena = Arena.ofShared()) {
            for (CpuMatmulKernels fast : new CpuMatmulKernels[] {new CpuMatmulKernels(new Parallel(1)), new CpuMatmulKernels(TWO_THREADS)}) {
                // The interface's default: two products, then the element-wise step on the calling thread.
                MatmulKernels separate = new MatmulKernels() {
                    @Override
                    public void matmul(WeightMatrix w, float[] x, int xOffset, float[] y, int yOffset, int n) {
                        fast.matmul(w, x, xOffset, y, yOffset, n);
                    }

                    @Override
                    public String name() {
                        return "separate";
                    }
                };
                for (int[] shape : SHAPES) {
                    WeightMatrix gate = randomMatrix(arena, dtype, shape[0], shape[1], random);
                    WeightMatrix up = randomMatrix(arena, dtype, shape[0], shape[1], random);
                    for (int n : new int[] {1, 2, 5}) {
                        float[] x = new float[2 + n * shape[1]];
                        for (int i = 0; i < x.length; i++) x[i] = (float) random.nextGaussian();
                        float[] expected = new float[3 + n * shape[0]];
                        float[] actual = new float[expected.length];
                        float[] scratch = new float[n * shape[0] + 1];
                        separate.swiglu(gate, up, x, 2, expected, 3, scratch, 1, n);
                        fast.swiglu(gate, up, x, 2, actual, 3, scratch, 1, n);
                        assertTrue(Arrays.equals(expected, actual), fast.name() + " " + dtype + " " + shape[0] + "x" + shape[1] + " n=" + n);
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void aBatchGivesTheBitsOfItsSeparateCalls(DType dtype) {
        // One parallel call splits every product's rows over the threads together; each row must come out as the
        // product's own call computes it, whatever the mix of shapes, pairs and offsets in the batch.
        Random random = new Random(31 + dtype.ordinal());
        try (Arena arena = Arena.ofShared()) {
            for (CpuMatmulKernels fast : new CpuMatmulKernels[] {new CpuMatmulKernels(new Parallel(1)), new CpuMatmulKernels(TWO_THREADS)}) {
                MatvecBatch batch = new MatvecBatch(SHAPES.length);
                float[][] expected = new float[SHAPES.length][];
                float[][] actual = new float[SHAPES.length][];
                for (int i = 0; i < SHAPES.length; i++) {
                    int rows = SHAPES[i][0];
                    int cols = SHAPES[i][1];
                    WeightMatrix w = randomMatrix(arena, dtype, rows, cols, random);
                    float[] x = new float[i + cols];
                    for (int c = 0; c < x.length; c++) x[c] = (float) random.nextGaussian();
                    expected[i] = new float[2 + rows];
                    actual[i] = new float[2 + rows];
                    if (i % 2 == 0) {
                        fast.matmul(w, x, i, expected[i], 2, 1);
                        batch.add(w, x, i, actual[i], 2);
                    } else {
                        WeightMatrix up = randomMatrix(arena, dtype, rows, cols, random);
                        fast.swiglu(w, up, x, i, expected[i], 2, new float[rows], 0, 1);
                        batch.addSwiglu(w, up, x, i, actual[i], 2, new float[1 + rows], 1);
                    }
                }
                fast.run(batch);
                for (int i = 0; i < SHAPES.length; i++) {
                    assertTrue(Arrays.equals(expected[i], actual[i]), fast.name() + " " + dtype + " product " + i + " of the batch ("
                            + SHAPES[i][0] + "x" + SHAPES[i][1] + ")");
                }
                assertThrows(IllegalStateException.class, () -> batch.add(batch.weights[0], new float[1], 0, new float[1], 0),
                        "a full batch takes no more");
                batch.clear();
                assertEquals(0, batch.size());
            }
        }
    }

    @Test
    void aBatchWithAnOutOfRangeBufferIsRefusedBeforeAnyWork() {
        try (Arena arena = Arena.ofShared()) {
            Random random = new Random(5);
            WeightMatrix w = randomMatrix(arena, DType.F32, 4, 8, random);
            WeightMatrix other = randomMatrix(arena, DType.F32, 4, 9, random);
            CpuMatmulKernels kernels = new CpuMatmulKernels(TWO_THREADS);
            MatvecBatch batch = new MatvecBatch(2);
            float[] ones = new float[8];
            Arrays.fill(ones, 1f);
            float[] first = new float[4];
            batch.add(w, ones, 0, first, 0);
            batch.add(w, new float[8], 1, new float[4], 0);
            assertThrows(IndexOutOfBoundsException.class, () -> kernels.run(batch));
            assertTrue(Arrays.equals(new float[4], first), "the valid product of the batch did not run either");
            assertThrows(IllegalArgumentException.class,
                    () -> new MatvecBatch(1).addSwiglu(w, other, new float[8], 0, new float[4], 0, new float[4], 0));
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void aTokensResultDoesNotDependOnTheOtherTokensOfItsProduct(DType dtype) {
        // Batched experts, split pods and micro-batches give a matrix different sets of tokens from one step to the
        // next; every batch size (matrix-vector, small-batch kernel or packed GEMM) must give each token the same bits,
        // also where the columns end in a partial vector (37 x 100).
        try (Arena arena = Arena.ofConfined()) {
            Random random = new Random(21);
            for (int[] shape : new int[][] {{37, 100}, {64, 3 * Simd.LANES}, {300, 1000}}) {
                WeightMatrix w = randomMatrix(arena, dtype, shape[0], shape[1], random);
                int most = 40;
                float[] x = new float[most * w.cols()];
                for (int i = 0; i < x.length; i++) x[i] = (float) random.nextGaussian();
                CpuMatmulKernels kernels = new CpuMatmulKernels(TWO_THREADS);
                float[] reference = new float[most * w.rows()];
                kernels.matmul(w, x, 0, reference, 0, most);
                for (int n = 1; n < most; n++) {
                    for (int first : new int[] {0, most - n}) {
                        float[] y = new float[n * w.rows()];
                        kernels.matmul(w, x, first * w.cols(), y, 0, n);
                        float[] expected = Arrays.copyOfRange(reference, first * w.rows(), (first + n) * w.rows());
                        assertTrue(Arrays.equals(expected, y), dtype + " " + w.rows() + "x" + w.cols() + ": tokens "
                                + first + ".." + (first + n - 1) + " alone differ from the same tokens among " + most);
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void wideningMatchesTheScalarConversionForEveryBitPattern(DType dtype) {
        try (Arena arena = Arena.ofConfined()) {
            int count = dtype == DType.F32 ? 1 << 20 : 1 << 16;
            MemorySegment m = arena.allocate((long) count * dtype.byteSize());
            Random random = new Random(11);
            for (int i = 0; i < count; i++) {
                if (dtype == DType.F32) m.set(TensorAccess.F32_LE, 4L * i, Float.intBitsToFloat(random.nextInt()));
                else m.set(TensorAccess.I16_LE, 2L * i, (short) i); // all 65536 patterns: subnormals, infinities, NaNs
            }
            float[] widened = new float[count + 3];
            // An odd start and count leave both a vector body and a scalar tail.
            WeightVectors.widen(m, dtype, 1, count - 2, widened, 1, count + 1);
            for (int i = 1; i < count - 1; i++) {
                float expected = TensorAccess.getFloat(m, dtype, i);
                float actual = widened[i];
                if (Float.isNaN(expected)) assertTrue(Float.isNaN(actual), dtype + " element " + i);
                else assertEquals(Float.floatToRawIntBits(expected), Float.floatToRawIntBits(actual), dtype + " element " + i);
            }
            assertEquals(0f, widened[count - 1]);
            assertEquals(0f, widened[count + 1], "padding is zero");
        }
    }

    @Test
    void outOfRangeBuffersAreRefusedBeforeAnyWork() {
        try (Arena arena = Arena.ofConfined()) {
            WeightMatrix w = randomMatrix(arena, DType.F32, 4, 8, new Random(1));
            CpuMatmulKernels kernels = new CpuMatmulKernels(new Parallel(1));
            assertThrows(IndexOutOfBoundsException.class, () -> kernels.matmul(w, new float[15], 0, new float[8], 0, 2));
            assertThrows(IndexOutOfBoundsException.class, () -> kernels.matmul(w, new float[16], 0, new float[7], 0, 2));
            assertThrows(IndexOutOfBoundsException.class, () -> kernels.matmul(w, new float[16], 1, new float[8], 0, 2));
            assertThrows(IllegalArgumentException.class, () -> kernels.matmul(w, new float[16], 0, new float[8], 0, -1));
        }
    }

    static WeightMatrix randomMatrix(Arena arena, DType dtype, int rows, int cols, Random random) {
        // One element of padding before the matrix: weights inside a safetensors file are not vector-aligned.
        MemorySegment all = arena.allocate(((long) rows * cols + 1) * dtype.byteSize());
        MemorySegment data = all.asSlice(dtype.byteSize());
        for (long i = 0; i < (long) rows * cols; i++) TensorAccess.setFloat(data, dtype, i, (float) (random.nextGaussian() * 0.5));
        return new WeightMatrix("w", data, dtype, rows, cols);
    }
}
