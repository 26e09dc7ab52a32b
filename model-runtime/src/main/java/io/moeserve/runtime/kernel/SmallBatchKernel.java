package io.moeserve.runtime.kernel;

import static io.moeserve.runtime.kernel.Simd.FLOATS;
import static io.moeserve.runtime.kernel.Simd.LANES;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.TensorAccess;
import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;

/**
 * Matrix times a few tokens (2 to {@value #MAX_TOKENS}: the tokens routed to one expert in a decode step, a short
 * prompt), straight from the checkpoint's dtype, without packing.
 *
 * <p>Why. With few tokens each weight feeds few FMAs, so the product is still bound by reading the weights, and the
 * packed GEMM's extra pass (widen every weight into a float32 panel, then read it back) costs more than the
 * arithmetic it feeds: measured at 4 tokens it ran at a third of the one-token kernel's bytes per second. Here each
 * step widens a weight vector in registers, as {@link MatvecKernel} does, and uses it against 4 tokens at once.
 *
 * <p>Design. A tile is 4 weight rows × 4 tokens, 16 accumulator vectors (21 of the 32 AVX-512 registers live). The
 * token loop runs inside the row loop, so a 4-row group is read from memory once and from L1 for every further
 * group of 4 tokens. A partial group of rows or tokens repeats its last row or token (computed twice, written twice
 * with the same value) instead of needing another loop. The last partial vector of columns is zero-padded, and the
 * lanes are reduced by {@link Simd#sumEach}: each (row, token) result is then computed by exactly the operations the
 * packed {@link GemmKernel} uses, in the same order, so a token's output has the same bits whichever kernel its
 * batch size picks and whichever tokens share its batch (splitting experts over pods relies on that). One copy of the
 * loop per dtype, for the reason {@link MatvecKernel} gives.
 */
final class SmallBatchKernel {

    /** The most tokens for which this kernel beats packing (measured with MatmulBenchmark). */
    static final int MAX_TOKENS = 8;

    private SmallBatchKernel() {}

    /**
     * One thread's scratch: the 16 accumulators stored for {@link Simd#sumEach} (16 vectors), their 16 sums,
     * and the zero-padded last vector of each of the 4 rows (4 vectors).
     */
    static float[] newScratch() {
        return new float[20 * LANES + 16];
    }

    /**
     * {@code y[t][r] = Σ_c x[t][c] · W[r][c]} for {@code rowFrom <= r < rowTo}, {@code tokenFrom <= t < tokenTo},
     * with x rows of {@code cols} floats at {@code xOff} and y rows of {@code rows} floats at {@code yOff}.
     */
    static void multiply(MemorySegment w, DType dtype, int rows, int cols, float[] x, int xOff, float[] y, int yOff,
                         int rowFrom, int rowTo, int tokenFrom, int tokenTo, float[] scratch) {
        switch (dtype) {
            case F32 -> f32(w, cols, x, xOff, y, yOff, rows, rowFrom, rowTo, tokenFrom, tokenTo, scratch);
            case BF16 -> bf16(w, cols, x, xOff, y, yOff, rows, rowFrom, rowTo, tokenFrom, tokenTo, scratch);
            case F16 -> f16(w, cols, x, xOff, y, yOff, rows, rowFrom, rowTo, tokenFrom, tokenTo, scratch);
        }
    }

    /** The {@code F32} tile loop; see the class comment. */
    private static void f32(MemorySegment w, int cols, float[] x, int xOff, float[] y, int yOff, int rows,
                            int rowFrom, int rowTo, int tokenFrom, int tokenTo, float[] scratch) {
        int tailBase = 16 * LANES + 16;
        long rowBytes = 4L * cols;
        int upper = cols - cols % LANES;
        int rest = cols - upper;
        VectorMask<Float> tailMask = FLOATS.indexInRange(0, rest);
        int lastRow = rowTo - 1;
        int lastToken = tokenTo - 1;
        for (int r = rowFrom; r < rowTo; r += 4) {
            int r1 = Math.min(r + 1, lastRow), r2 = Math.min(r + 2, lastRow), r3 = Math.min(r + 3, lastRow);
            long b0 = r * rowBytes, b1 = r1 * rowBytes, b2 = r2 * rowBytes, b3 = r3 * rowBytes;
            if (rest > 0) {
                long o = 4L * upper;
                for (int i = 0; i < LANES; i++) {
                    boolean in = i < rest;
                    long e = o + 4L * i;
                    scratch[tailBase + i] = in ? w.get(TensorAccess.F32_LE, b0 + e) : 0f;
                    scratch[tailBase + LANES + i] = in ? w.get(TensorAccess.F32_LE, b1 + e) : 0f;
                    scratch[tailBase + 2 * LANES + i] = in ? w.get(TensorAccess.F32_LE, b2 + e) : 0f;
                    scratch[tailBase + 3 * LANES + i] = in ? w.get(TensorAccess.F32_LE, b3 + e) : 0f;
                }
            }
            for (int t = tokenFrom; t < tokenTo; t += 4) {
                int t1 = Math.min(t + 1, lastToken), t2 = Math.min(t + 2, lastToken), t3 = Math.min(t + 3, lastToken);
                int x0 = xOff + t * cols, x1 = xOff + t1 * cols, x2 = xOff + t2 * cols, x3 = xOff + t3 * cols;
                FloatVector a00 = FloatVector.zero(FLOATS), a01 = a00, a02 = a00, a03 = a00;
                FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
                FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
                FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
                int c = 0;
                for (; c < upper; c += LANES) {
                    FloatVector v0 = FloatVector.fromArray(FLOATS, x, x0 + c);
                    FloatVector v1 = FloatVector.fromArray(FLOATS, x, x1 + c);
                    FloatVector v2 = FloatVector.fromArray(FLOATS, x, x2 + c);
                    FloatVector v3 = FloatVector.fromArray(FLOATS, x, x3 + c);
                    long o = 4L * c;
                    FloatVector q = WeightVectors.f32(w, b0 + o);
                    a00 = q.fma(v0, a00);
                    a01 = q.fma(v1, a01);
                    a02 = q.fma(v2, a02);
                    a03 = q.fma(v3, a03);
                    q = WeightVectors.f32(w, b1 + o);
                    a10 = q.fma(v0, a10);
                    a11 = q.fma(v1, a11);
                    a12 = q.fma(v2, a12);
                    a13 = q.fma(v3, a13);
                    q = WeightVectors.f32(w, b2 + o);
                    a20 = q.fma(v0, a20);
                    a21 = q.fma(v1, a21);
                    a22 = q.fma(v2, a22);
                    a23 = q.fma(v3, a23);
                    q = WeightVectors.f32(w, b3 + o);
                    a30 = q.fma(v0, a30);
                    a31 = q.fma(v1, a31);
                    a32 = q.fma(v2, a32);
                    a33 = q.fma(v3, a33);
                }
                if (rest > 0) {
                    // The zero-padded last vector, exactly as the packed GEMM computes it.
                    FloatVector v0 = FloatVector.fromArray(FLOATS, x, x0 + c, tailMask);
                    FloatVector v1 = FloatVector.fromArray(FLOATS, x, x1 + c, tailMask);
                    FloatVector v2 = FloatVector.fromArray(FLOATS, x, x2 + c, tailMask);
                    FloatVector v3 = FloatVector.fromArray(FLOATS, x, x3 + c, tailMask);
                    FloatVector q = FloatVector.fromArray(FLOATS, scratch, tailBase);
                    a00 = q.fma(v0, a00);
                    a01 = q.fma(v1, a01);
                    a02 = q.fma(v2, a02);
                    a03 = q.fma(v3, a03);
                    q = FloatVector.fromArray(FLOATS, scratch, tailBase + LANES);
                    a10 = q.fma(v0, a10);
                    a11 = q.fma(v1, a11);
                    a12 = q.fma(v2, a12);
                    a13 = q.fma(v3, a13);
                    q = FloatVector.fromArray(FLOATS, scratch, tailBase + 2 * LANES);
                    a20 = q.fma(v0, a20);
                    a21 = q.fma(v1, a21);
                    a22 = q.fma(v2, a22);
                    a23 = q.fma(v3, a23);
                    q = FloatVector.fromArray(FLOATS, scratch, tailBase + 3 * LANES);
                    a30 = q.fma(v0, a30);
                    a31 = q.fma(v1, a31);
                    a32 = q.fma(v2, a32);
                    a33 = q.fma(v3, a33);
                }
                a00.intoArray(scratch, 0);
                a01.intoArray(scratch, LANES);
                a02.intoArray(scratch, 2 * LANES);
                a03.intoArray(scratch, 3 * LANES);
                a10.intoArray(scratch, 4 * LANES);
                a11.intoArray(scratch, 5 * LANES);
                a12.intoArray(scratch, 6 * LANES);
                a13.intoArray(scratch, 7 * LANES);
                a20.intoArray(scratch, 8 * LANES);
                a21.intoArray(scratch, 9 * LANES);
                a22.intoArray(scratch, 10 * LANES);
                a23.intoArray(scratch, 11 * LANES);
                a30.intoArray(scratch, 12 * LANES);
                a31.intoArray(scratch, 13 * LANES);
                a32.intoArray(scratch, 14 * LANES);
                a33.intoArray(scratch, 15 * LANES);
                Simd.sumEach(scratch, 16, scratch, 16 * LANES);
                int s = 16 * LANES;
                int y0 = yOff + t * rows, y1 = yOff + t1 * rows, y2 = yOff + t2 * rows, y3 = yOff + t3 * rows;
                // Clamped rows and tokens repeat a real one: they write the same value to the same place again.
                y[y0 + r] = scratch[s];
                y[y1 + r] = scratch[s + 1];
                y[y2 + r] = scratch[s + 2];
                y[y3 + r] = scratch[s + 3];
                y[y0 + r1] = scratch[s + 4];
                y[y1 + r1] = scratch[s + 5];
                y[y2 + r1] = scratch[s + 6];
                y[y3 + r1] = scratch[s + 7];
                y[y0 + r2] = scratch[s + 8];
                y[y1 + r2] = scratch[s + 9];
                y[y2 + r2] = scratch[s + 10];
                y[y3 + r2] = scratch[s + 11];
                y[y0 + r3] = scratch[s + 12];
                y[y1 + r3] = scratch[s + 13];
                y[y2 + r3] = scratch[s + 14];
                y[y3 + r3] = scratch[s + 15];
            }
        }
    }

    /** The {@code BF16} tile loop; see the class comment. */
    private static void bf16(MemorySegment w, int cols, float[] x, int xOff, float[] y, int yOff, int rows,
                            int rowFrom, int rowTo, int tokenFrom, int tokenTo, float[] scratch) {
        int tailBase = 16 * LANES + 16;
        long rowBytes = 2L * cols;
        int upper = cols - cols % LANES;
        int rest = cols - upper;
        VectorMask<Float> tailMask = FLOATS.indexInRange(0, rest);
        int lastRow = rowTo - 1;
        int lastToken = tokenTo - 1;
        for (int r = rowFrom; r < rowTo; r += 4) {
            int r1 = Math.min(r + 1, lastRow), r2 = Math.min(r + 2, lastRow), r3 = Math.min(r + 3, lastRow);
            long b0 = r * rowBytes, b1 = r1 * rowBytes, b2 = r2 * rowBytes, b3 = r3 * rowBytes;
            if (rest > 0) {
                long o = 2L * upper;
                for (int i = 0; i < LANES; i++) {
                    boolean in = i < rest;
                    long e = o + 2L * i;
                    scratch[tailBase + i] = in ? TensorAccess.bf16ToFloat(w.get(TensorAccess.I16_LE, b0 + e)) : 0f;
                    scratch[tailBase + LANES + i] = in ? TensorAccess.bf16ToFloat(w.get(TensorAccess.I16_LE, b1 + e)) : 0f;
                    scratch[tailBase + 2 * LANES + i] = in ? TensorAccess.bf16ToFloat(w.get(TensorAccess.I16_LE, b2 + e)) : 0f;
                    scratch[tailBase + 3 * LANES + i] = in ? TensorAccess.bf16ToFloat(w.get(TensorAccess.I16_LE, b3 + e)) : 0f;
                }
            }
            for (int t = tokenFrom; t < tokenTo; t += 4) {
                int t1 = Math.min(t + 1, lastToken), t2 = Math.min(t + 2, lastToken), t3 = Math.min(t + 3, lastToken);
                int x0 = xOff + t * cols, x1 = xOff + t1 * cols, x2 = xOff + t2 * cols, x3 = xOff + t3 * cols;
                FloatVector a00 = FloatVector.zero(FLOATS), a01 = a00, a02 = a00, a03 = a00;
                FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
                FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
                FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
                int c = 0;
                for (; c < upper; c += LANES) {
                    FloatVector v0 = FloatVector.fromArray(FLOATS, x, x0 + c);
                    FloatVector v1 = FloatVector.fromArray(FLOATS, x, x1 + c);
                    FloatVector v2 = FloatVector.fromArray(FLOATS, x, x2 + c);
                    FloatVector v3 = FloatVector.fromArray(FLOATS, x, x3 + c);
                    long o = 2L * c;
                    FloatVector q = WeightVectors.bf16(w, b0 + o);
                    a00 = q.fma(v0, a00);
                    a01 = q.fma(v1, a01);
                    a02 = q.fma(v2, a02);
                    a03 = q.fma(v3, a03);
                    q = WeightVectors.bf16(w, b1 + o);
                    a10 = q.fma(v0, a10);
                    a11 = q.fma(v1, a11);
                    a12 = q.fma(v2, a12);
                    a13 = q.fma(v3, a13);
                    q = WeightVectors.bf16(w, b2 + o);
                    a20 = q.fma(v0, a20);
                    a21 = q.fma(v1, a21);
                    a22 = q.fma(v2, a22);
                    a23 = q.fma(v3, a23);
                    q = WeightVectors.bf16(w, b3 + o);
                    a30 = q.fma(v0, a30);
                    a31 = q.fma(v1, a31);
                    a32 = q.fma(v2, a32);
                    a33 = q.fma(v3, a33);
                }
                if (rest > 0) {
                    // The zero-padded last vector, exactly as the packed GEMM computes it.
                    FloatVector v0 = FloatVector.fromArray(FLOATS, x, x0 + c, tailMask);
                    FloatVector v1 = FloatVector.fromArray(FLOATS, x, x1 + c, tailMask);
                    FloatVector v2 = FloatVector.fromArray(FLOATS, x, x2 + c, tailMask);
                    FloatVector v3 = FloatVector.fromArray(FLOATS, x, x3 + c, tailMask);
                    FloatVector q = FloatVector.fromArray(FLOATS, scratch, tailBase);
                    a00 = q.fma(v0, a00);
                    a01 = q.fma(v1, a01);
                    a02 = q.fma(v2, a02);
                    a03 = q.fma(v3, a03);
                    q = FloatVector.fromArray(FLOATS, scratch, tailBase + LANES);
                    a10 = q.fma(v0, a10);
                    a11 = q.fma(v1, a11);
                    a12 = q.fma(v2, a12);
                    a13 = q.fma(v3, a13);
                    q = FloatVector.fromArray(FLOATS, scratch, tailBase + 2 * LANES);
                    a20 = q.fma(v0, a20);
                    a21 = q.fma(v1, a21);
                    a22 = q.fma(v2, a22);
                    a23 = q.fma(v3, a23);
                    q = FloatVector.fromArray(FLOATS, scratch, tailBase + 3 * LANES);
                    a30 = q.fma(v0, a30);
                    a31 = q.fma(v1, a31);
                    a32 = q.fma(v2, a32);
                    a33 = q.fma(v3, a33);
                }
                a00.intoArray(scratch, 0);
                a01.intoArray(scratch, LANES);
                a02.intoArray(scratch, 2 * LANES);
                a03.intoArray(scratch, 3 * LANES);
                a10.intoArray(scratch, 4 * LANES);
                a11.intoArray(scratch, 5 * LANES);
                a12.intoArray(scratch, 6 * LANES);
                a13.intoArray(scratch, 7 * LANES);
                a20.intoArray(scratch, 8 * LANES);
                a21.intoArray(scratch, 9 * LANES);
                a22.intoArray(scratch, 10 * LANES);
                a23.intoArray(scratch, 11 * LANES);
                a30.intoArray(scratch, 12 * LANES);
                a31.intoArray(scratch, 13 * LANES);
                a32.intoArray(scratch, 14 * LANES);
                a33.intoArray(scratch, 15 * LANES);
                Simd.sumEach(scratch, 16, scratch, 16 * LANES);
                int s = 16 * LANES;
                int y0 = yOff + t * rows, y1 = yOff + t1 * rows, y2 = yOff + t2 * rows, y3 = yOff + t3 * rows;
                // Clamped rows and tokens repeat a real one: they write the same value to the same place again.
                y[y0 + r] = scratch[s];
                y[y1 + r] = scratch[s + 1];
                y[y2 + r] = scratch[s + 2];
                y[y3 + r] = scratch[s + 3];
                y[y0 + r1] = scratch[s + 4];
                y[y1 + r1] = scratch[s + 5];
                y[y2 + r1] = scratch[s + 6];
                y[y3 + r1] = scratch[s + 7];
                y[y0 + r2] = scratch[s + 8];
                y[y1 + r2] = scratch[s + 9];
                y[y2 + r2] = scratch[s + 10];
                y[y3 + r2] = scratch[s + 11];
                y[y0 + r3] = scratch[s + 12];
                y[y1 + r3] = scratch[s + 13];
                y[y2 + r3] = scratch[s + 14];
                y[y3 + r3] = scratch[s + 15];
            }
        }
    }

    /** The {@code F16} tile loop; see the class comment. */
    private static void f16(MemorySegment w, int cols, float[] x, int xOff, float[] y, int yOff, int rows,
                            int rowFrom, int rowTo, int tokenFrom, int tokenTo, float[] scratch) {
        int tailBase = 16 * LANES + 16;
        long rowBytes = 2L * cols;
        int upper = cols - cols % LANES;
        int rest = cols - upper;
        VectorMask<Float> tailMask = FLOATS.indexInRange(0, rest);
        int lastRow = rowTo - 1;
        int lastToken = tokenTo - 1;
        for (int r = rowFrom; r < rowTo; r += 4) {
            int r1 = Math.min(r + 1, lastRow), r2 = Math.min(r + 2, lastRow), r3 = Math.min(r + 3, lastRow);
            long b0 = r * rowBytes, b1 = r1 * rowBytes, b2 = r2 * rowBytes, b3 = r3 * rowBytes;
            if (rest > 0) {
                long o = 2L * upper;
                for (int i = 0; i < LANES; i++) {
                    boolean in = i < rest;
                    long e = o + 2L * i;
                    scratch[tailBase + i] = in ? Float.float16ToFloat(w.get(TensorAccess.I16_LE, b0 + e)) : 0f;
                    scratch[tailBase + LANES + i] = in ? Float.float16ToFloat(w.get(TensorAccess.I16_LE, b1 + e)) : 0f;
                    scratch[tailBase + 2 * LANES + i] = in ? Float.float16ToFloat(w.get(TensorAccess.I16_LE, b2 + e)) : 0f;
                    scratch[tailBase + 3 * LANES + i] = in ? Float.float16ToFloat(w.get(TensorAccess.I16_LE, b3 + e)) : 0f;
                }
            }
            for (int t = tokenFrom; t < tokenTo; t += 4) {
                int t1 = Math.min(t + 1, lastToken), t2 = Math.min(t + 2, lastToken), t3 = Math.min(t + 3, lastToken);
                int x0 = xOff + t * cols, x1 = xOff + t1 * cols, x2 = xOff + t2 * cols, x3 = xOff + t3 * cols;
                FloatVector a00 = FloatVector.zero(FLOATS), a01 = a00, a02 = a00, a03 = a00;
                FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
                FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
                FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
                int c = 0;
                for (; c < upper; c += LANES) {
                    FloatVector v0 = FloatVector.fromArray(FLOATS, x, x0 + c);
                    FloatVector v1 = FloatVector.fromArray(FLOATS, x, x1 + c);
                    FloatVector v2 = FloatVector.fromArray(FLOATS, x, x2 + c);
                    FloatVector v3 = FloatVector.fromArray(FLOATS, x, x3 + c);
                    long o = 2L * c;
                    FloatVector q = WeightVectors.f16(w, b0 + o);
                    a00 = q.fma(v0, a00);
                    a01 = q.fma(v1, a01);
                    a02 = q.fma(v2, a02);
                    a03 = q.fma(v3, a03);
                    q = WeightVectors.f16(w, b1 + o);
                    a10 = q.fma(v0, a10);
                    a11 = q.fma(v1, a11);
                    a12 = q.fma(v2, a12);
                    a13 = q.fma(v3, a13);
                    q = WeightVectors.f16(w, b2 + o);
                    a20 = q.fma(v0, a20);
                    a21 = q.fma(v1, a21);
                    a22 = q.fma(v2, a22);
                    a23 = q.fma(v3, a23);
                    q = WeightVectors.f16(w, b3 + o);
                    a30 = q.fma(v0, a30);
                    a31 = q.fma(v1, a31);
                    a32 = q.fma(v2, a32);
                    a33 = q.fma(v3, a33);
                }
                if (rest > 0) {
                    // The zero-padded last vector, exactly as the packed GEMM computes it.
                    FloatVector v0 = FloatVector.fromArray(FLOATS, x, x0 + c, tailMask);
                    FloatVector v1 = FloatVector.fromArray(FLOATS, x, x1 + c, tailMask);
                    FloatVector v2 = FloatVector.fromArray(FLOATS, x, x2 + c, tailMask);
                    FloatVector v3 = FloatVector.fromArray(FLOATS, x, x3 + c, tailMask);
                    FloatVector q = FloatVector.fromArray(FLOATS, scratch, tailBase);
                    a00 = q.fma(v0, a00);
                    a01 = q.fma(v1, a01);
                    a02 = q.fma(v2, a02);
                    a03 = q.fma(v3, a03);
                    q = FloatVector.fromArray(FLOATS, scratch, tailBase + LANES);
                    a10 = q.fma(v0, a10);
                    a11 = q.fma(v1, a11);
                    a12 = q.fma(v2, a12);
                    a13 = q.fma(v3, a13);
                    q = FloatVector.fromArray(FLOATS, scratch, tailBase + 2 * LANES);
                    a20 = q.fma(v0, a20);
                    a21 = q.fma(v1, a21);
                    a22 = q.fma(v2, a22);
                    a23 = q.fma(v3, a23);
                    q = FloatVector.fromArray(FLOATS, scratch, tailBase + 3 * LANES);
                    a30 = q.fma(v0, a30);
                    a31 = q.fma(v1, a31);
                    a32 = q.fma(v2, a32);
                    a33 = q.fma(v3, a33);
                }
                a00.intoArray(scratch, 0);
                a01.intoArray(scratch, LANES);
                a02.intoArray(scratch, 2 * LANES);
                a03.intoArray(scratch, 3 * LANES);
                a10.intoArray(scratch, 4 * LANES);
                a11.intoArray(scratch, 5 * LANES);
                a12.intoArray(scratch, 6 * LANES);
                a13.intoArray(scratch, 7 * LANES);
                a20.intoArray(scratch, 8 * LANES);
                a21.intoArray(scratch, 9 * LANES);
                a22.intoArray(scratch, 10 * LANES);
                a23.intoArray(scratch, 11 * LANES);
                a30.intoArray(scratch, 12 * LANES);
                a31.intoArray(scratch, 13 * LANES);
                a32.intoArray(scratch, 14 * LANES);
                a33.intoArray(scratch, 15 * LANES);
                Simd.sumEach(scratch, 16, scratch, 16 * LANES);
                int s = 16 * LANES;
                int y0 = yOff + t * rows, y1 = yOff + t1 * rows, y2 = yOff + t2 * rows, y3 = yOff + t3 * rows;
                // Clamped rows and tokens repeat a real one: they write the same value to the same place again.
                y[y0 + r] = scratch[s];
                y[y1 + r] = scratch[s + 1];
                y[y2 + r] = scratch[s + 2];
                y[y3 + r] = scratch[s + 3];
                y[y0 + r1] = scratch[s + 4];
                y[y1 + r1] = scratch[s + 5];
                y[y2 + r1] = scratch[s + 6];
                y[y3 + r1] = scratch[s + 7];
                y[y0 + r2] = scratch[s + 8];
                y[y1 + r2] = scratch[s + 9];
                y[y2 + r2] = scratch[s + 10];
                y[y3 + r2] = scratch[s + 11];
                y[y0 + r3] = scratch[s + 12];
                y[y1 + r3] = scratch[s + 13];
                y[y2 + r3] = scratch[s + 14];
                y[y3 + r3] = scratch[s + 15];
            }
        }
    }
}
