package io.moeserve.runtime.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Random;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

/**
 * The kernels must give the same bits however the JIT has compiled them. With {@code reduceLanes(ADD)} a product
 * changed in the last bits once C2 compiled the kernel (a few hundred calls into a run), so the same prompt gave
 * different logits before and after warm-up. These loops run long enough for C2 to compile the code under test.
 */
class DeterministicReductionTest {

    @Test
    void sumAddsTheLanesInAFixedTree() {
        float[] v = new float[Simd.LANES];
        Arrays.fill(v, 1f);
        assertEquals(Simd.LANES, Simd.sum(FloatVector.fromArray(Simd.FLOATS, v, 0)), 0f);
        // The order is a butterfly, not left to right: lanes 0 and 2 meet before lanes 0 and 1, so the 1 is absorbed
        // into 1e8 before -1e8 cancels it (left to right would give 1).
        Arrays.fill(v, 0f);
        v[0] = 1e8f;
        v[1] = -1e8f;
        v[2] = 1f;
        assertEquals(0f, Simd.sum(FloatVector.fromArray(Simd.FLOATS, v, 0)), 0f);
    }

    @Test
    void sumEachGivesTheBitsOfSum() {
        assertEquals("", sumEachMismatches());
    }

    private static String sumEachMismatches() {
        Random r = new Random(9);
        // 4 and 16: what the kernels reduce per tile; 2 groups of LANES in registers plus 3 more in scalar.
        for (int count : new int[] {4, 16, 2 * Simd.LANES + 3}) {
            float[] lanes = new float[count * Simd.LANES];
            for (int round = 0; round < 2_000; round++) {
                for (int i = 0; i < lanes.length; i++) {
                    // Mixed magnitudes, so that a different addition order would show in the last bits.
                    lanes[i] = (float) (r.nextGaussian() * Math.pow(10, r.nextInt(9) - 4));
                }
                float[] expected = new float[count];
                for (int k = 0; k < count; k++) expected[k] = Simd.sum(FloatVector.fromArray(Simd.FLOATS, lanes, k * Simd.LANES));
                float[] sums = new float[count + 2];
                Simd.sumEach(lanes, count, sums, 2);
                for (int k = 0; k < count; k++) {
                    if (Float.floatToRawIntBits(expected[k]) != Float.floatToRawIntBits(sums[k + 2])) {
                        return "vector " + k + " of " + count + ", round " + round + ": " + sums[k + 2] + " instead of " + expected[k];
                    }
                }
            }
        }
        return "";
    }

    @Test
    void productsDoNotChangeWhenCompiled() {
        for (int n : new int[] {1, 3, 11}) { // the matvec, the small-batch kernel and the packed GEMM
            Random r = new Random(n);
            int rows = 64, cols = 64;
            MemorySegment seg = Arena.ofAuto().allocate((long) rows * cols * 4);
            for (int i = 0; i < rows * cols; i++) seg.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, (float) r.nextGaussian());
            WeightMatrix w = new WeightMatrix("w", seg, DType.F32, rows, cols);
            float[] x = new float[n * cols];
            for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian();
            CpuMatmulKernels kernels = new CpuMatmulKernels(new Parallel(1));
            float[] first = new float[n * rows];
            float[] y = new float[n * rows];
            kernels.matmul(w, x, 0, first, 0, n);
            for (int i = 0; i < 20_000; i++) {
                kernels.matmul(w, x, 0, y, 0, n);
                if (!Arrays.equals(first, y)) {
                    throw new AssertionError("n=" + n + ": the product changed after " + i + " calls");
                }
            }
        }
    }
}
