package io.moeserve.runtime.kernel;

import static io.moeserve.runtime.kernel.Simd.FLOATS;
import static io.moeserve.runtime.kernel.Simd.LANES;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;

/**
 * Matrix-matrix product (prefill, batched experts: n > 1) over a block of weight rows and tokens.
 *
 * <p>Design. Each weight is used n times, so the product is bound by arithmetic if every weight vector, once in a
 * register, feeds several FMAs. The micro-kernel computes a tile of {@value #ROWS} weight rows × {@value #TOKENS}
 * tokens with 16 accumulator vectors: per step it loads 4 weight vectors and 4 x vectors and issues 16 FMAs (21 of
 * the 32 AVX-512 registers live, so nothing spills), and reduces lanes only once per tile, after the full row.
 *
 * <p>Packing. Before the tiles run, the kernel copies the current block of x rows, and each group of 4 weight rows
 * widened to float32, into per-thread scratch whose rows are padded with zeros to a whole number of vectors. That
 * widens each weight once per token block instead of once per token tile, keeps the micro-kernel a single
 * float-only loop with no dtype branches and no column tail (C2 compiles a loop holding every dtype's conversion
 * badly), and gives it contiguous, cache-resident operands.
 *
 * <p>Blocking. Tokens are taken in blocks whose packed x fits about {@value #X_BLOCK_BYTES} bytes (half of a
 * 1 MiB L2), so while a thread walks its rows the x block stays in L2 and the 4-row weight panel in L1/L2; weights
 * are re-read from memory once per token block, which is cheap next to n FMAs each. Leftover tokens (n mod 4) use
 * a 4 × 1 kernel; a leftover group of fewer than 4 rows computes garbage in the unused rows and stores only the
 * valid ones. Callers split work over threads by row groups (or by tokens when there are few rows).
 */
final class GemmKernel {

    /** Weight rows per micro-tile. */
    static final int ROWS = 4;
    /** Tokens per micro-tile. */
    static final int TOKENS = 4;
    private static final int X_BLOCK_BYTES = 512 * 1024;

    private GemmKernel() {}

    /** One thread's packed panels; they grow when a wider matrix or longer block arrives, never per call. */
    static final class Scratch {
        private float[] weights = new float[0];
        private float[] tokens = new float[0];
        private final float[] sums = new float[ROWS * TOKENS];
        // The tile's accumulators, stored for Simd.sumEach (see there why not Simd.sum).
        private final float[] lanes = new float[ROWS * TOKENS * LANES];
    }

    /**
     * {@code y[t][r] = Σ_c x[t][c] · W[r][c]} for {@code rowFrom <= r < rowTo}, {@code tokenFrom <= t < tokenTo},
     * with x rows of {@code cols} floats at {@code xOff} and y rows of {@code rows} floats at {@code yOff}.
     */
    static void multiply(WeightMatrix matrix, float[] x, int xOff, float[] y, int yOff,
                         int rowFrom, int rowTo, int tokenFrom, int tokenTo, Scratch s) {
        MemorySegment w = matrix.data();
        DType dtype = matrix.dtype();
        int rows = matrix.rows();
        int cols = matrix.cols();
        boolean quantized = matrix.isQuantized();
        int stride = cols + (LANES - cols % LANES) % LANES;
        int block = Math.max(TOKENS, X_BLOCK_BYTES / (4 * stride) / TOKENS * TOKENS);
        block = Math.min(block, tokenTo - tokenFrom);
        if (s.weights.length < ROWS * stride) s.weights = new float[ROWS * stride];
        if (s.tokens.length < block * stride) s.tokens = new float[block * stride];
        float[] ws = s.weights;
        float[] xs = s.tokens;
        float[] sums = s.sums;
        float[] lanes = s.lanes;
        for (int t0 = tokenFrom; t0 < tokenTo; t0 += block) {
            int nt = Math.min(block, tokenTo - t0);
            for (int j = 0; j < nt; j++) {
                System.arraycopy(x, xOff + (t0 + j) * cols, xs, j * stride, cols);
                Arrays.fill(xs, j * stride + cols, (j + 1) * stride, 0f);
            }
            for (int r = rowFrom; r < rowTo; r += ROWS) {
                int vr = Math.min(ROWS, rowTo - r);
                for (int i = 0; i < vr; i++) {
                    if (quantized) QuantizedKernel.widen(matrix, r + i, ws, i * stride, stride);
                    else WeightVectors.widen(w, dtype, (long) (r + i) * cols, cols, ws, i * stride, stride);
                }
                int yBase = yOff + t0 * rows + r;
                int j = 0;
                for (; j + TOKENS <= nt; j += TOKENS) {
                    tile4x4(ws, xs, j * stride, stride, lanes, sums);
                    store(sums, TOKENS, y, yBase + j * rows, rows, vr);
                }
                for (; j < nt; j++) {
                    tile4x1(ws, xs, j * stride, stride, lanes, sums);
                    store(sums, 1, y, yBase + j * rows, rows, vr);
                }
            }
        }
    }

    /** sums[i·tokens + j] → y[base + j·rows + i] for the valid rows i. */
    private static void store(float[] sums, int tokens, float[] y, int base, int rows, int validRows) {
        for (int j = 0; j < tokens; j++) {
            for (int i = 0; i < validRows; i++) y[base + j * rows + i] = sums[i * tokens + j];
        }
    }

    /** 4 packed weight rows × 4 packed token rows, all {@code stride} long; sums[i·4 + j]. */
    private static void tile4x4(float[] ws, float[] xs, int xBase, int stride, float[] lanes, float[] sums) {
        FloatVector a00 = FloatVector.zero(FLOATS), a01 = a00, a02 = a00, a03 = a00;
        FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        int x1 = xBase + stride, x2 = x1 + stride, x3 = x2 + stride;
        int w1 = stride, w2 = 2 * stride, w3 = 3 * stride;
        for (int c = 0; c < stride; c += LANES) {
            FloatVector v0 = FloatVector.fromArray(FLOATS, xs, xBase + c);
            FloatVector v1 = FloatVector.fromArray(FLOATS, xs, x1 + c);
            FloatVector v2 = FloatVector.fromArray(FLOATS, xs, x2 + c);
            FloatVector v3 = FloatVector.fromArray(FLOATS, xs, x3 + c);
            FloatVector q = FloatVector.fromArray(FLOATS, ws, c);
            a00 = q.fma(v0, a00);
            a01 = q.fma(v1, a01);
            a02 = q.fma(v2, a02);
            a03 = q.fma(v3, a03);
            q = FloatVector.fromArray(FLOATS, ws, w1 + c);
            a10 = q.fma(v0, a10);
            a11 = q.fma(v1, a11);
            a12 = q.fma(v2, a12);
            a13 = q.fma(v3, a13);
            q = FloatVector.fromArray(FLOATS, ws, w2 + c);
            a20 = q.fma(v0, a20);
            a21 = q.fma(v1, a21);
            a22 = q.fma(v2, a22);
            a23 = q.fma(v3, a23);
            q = FloatVector.fromArray(FLOATS, ws, w3 + c);
            a30 = q.fma(v0, a30);
            a31 = q.fma(v1, a31);
            a32 = q.fma(v2, a32);
            a33 = q.fma(v3, a33);
        }
        a00.intoArray(lanes, 0);
        a01.intoArray(lanes, LANES);
        a02.intoArray(lanes, 2 * LANES);
        a03.intoArray(lanes, 3 * LANES);
        a10.intoArray(lanes, 4 * LANES);
        a11.intoArray(lanes, 5 * LANES);
        a12.intoArray(lanes, 6 * LANES);
        a13.intoArray(lanes, 7 * LANES);
        a20.intoArray(lanes, 8 * LANES);
        a21.intoArray(lanes, 9 * LANES);
        a22.intoArray(lanes, 10 * LANES);
        a23.intoArray(lanes, 11 * LANES);
        a30.intoArray(lanes, 12 * LANES);
        a31.intoArray(lanes, 13 * LANES);
        a32.intoArray(lanes, 14 * LANES);
        a33.intoArray(lanes, 15 * LANES);
        Simd.sumEach(lanes, 16, sums, 0);
    }

    /** 4 packed weight rows × 1 packed token row; sums[i]. */
    private static void tile4x1(float[] ws, float[] xs, int xBase, int stride, float[] lanes, float[] sums) {
        FloatVector a0 = FloatVector.zero(FLOATS), a1 = a0, a2 = a0, a3 = a0;
        int w1 = stride, w2 = 2 * stride, w3 = 3 * stride;
        for (int c = 0; c < stride; c += LANES) {
            FloatVector v = FloatVector.fromArray(FLOATS, xs, xBase + c);
            a0 = FloatVector.fromArray(FLOATS, ws, c).fma(v, a0);
            a1 = FloatVector.fromArray(FLOATS, ws, w1 + c).fma(v, a1);
            a2 = FloatVector.fromArray(FLOATS, ws, w2 + c).fma(v, a2);
            a3 = FloatVector.fromArray(FLOATS, ws, w3 + c).fma(v, a3);
        }
        a0.intoArray(lanes, 0);
        a1.intoArray(lanes, LANES);
        a2.intoArray(lanes, 2 * LANES);
        a3.intoArray(lanes, 3 * LANES);
        Simd.sumEach(lanes, 4, sums, 0);
    }
}
