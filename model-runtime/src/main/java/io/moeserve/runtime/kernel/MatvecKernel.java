package io.moeserve.runtime.kernel;

import static io.moeserve.runtime.kernel.Simd.FLOATS;
import static io.moeserve.runtime.kernel.Simd.LANES;

import io.moeserve.runtime.tensor.TensorAccess;
import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;

/**
 * Matrix-vector product (decode, n = 1) over a range of weight rows, one method per weight dtype.
 *
 * <p>Design. A matrix-vector product reads every weight once and does one FMA per weight, so it is bound by memory
 * bandwidth, not arithmetic; the kernel's job is to keep enough loads in flight. It walks four rows at once, each
 * with its own accumulator vector, so every step issues four independent weight streams against one x vector (x is
 * a few KiB and stays in L1); lanes are reduced once, at the end of the rows, then the remaining
 * {@code cols % LANES} columns are added in scalar. A trailing group of fewer than four rows repeats its last row
 * (read from cache, written twice with the same value) instead of needing a second loop. Weights are widened in
 * registers by {@link WeightVectors}; there is one copy of the loop per dtype because C2 compiles a loop that
 * holds all three conversions badly (its inlining budget runs out and vectors spill to the heap).
 */
final class MatvecKernel {

    private MatvecKernel() {}

    /** {@code y[yOff + r] = Σ_c x[xOff + c] · W[r][c]} for {@code rowFrom <= r < rowTo}, float32 weights. */
    static void f32(MemorySegment w, int cols, float[] x, int xOff, float[] y, int yOff, int rowFrom, int rowTo) {
        long rowBytes = 4L * cols;
        int upper = cols - cols % LANES;
        int last = rowTo - 1;
        for (int r = rowFrom; r < rowTo; r += 4) {
            int r1 = Math.min(r + 1, last), r2 = Math.min(r + 2, last), r3 = Math.min(r + 3, last);
            long b0 = r * rowBytes, b1 = r1 * rowBytes, b2 = r2 * rowBytes, b3 = r3 * rowBytes;
            FloatVector a0 = FloatVector.zero(FLOATS), a1 = a0, a2 = a0, a3 = a0;
            for (int c = 0; c < upper; c += LANES) {
                FloatVector xv = FloatVector.fromArray(FLOATS, x, xOff + c);
                long o = 4L * c;
                a0 = WeightVectors.f32(w, b0 + o).fma(xv, a0);
                a1 = WeightVectors.f32(w, b1 + o).fma(xv, a1);
                a2 = WeightVectors.f32(w, b2 + o).fma(xv, a2);
                a3 = WeightVectors.f32(w, b3 + o).fma(xv, a3);
            }
            float s0 = Simd.sum(a0), s1 = Simd.sum(a1);
            float s2 = Simd.sum(a2), s3 = Simd.sum(a3);
            for (int c = upper; c < cols; c++) {
                float xc = x[xOff + c];
                long o = 4L * c;
                s0 += w.get(TensorAccess.F32_LE, b0 + o) * xc;
                s1 += w.get(TensorAccess.F32_LE, b1 + o) * xc;
                s2 += w.get(TensorAccess.F32_LE, b2 + o) * xc;
                s3 += w.get(TensorAccess.F32_LE, b3 + o) * xc;
            }
            y[yOff + r] = s0;
            y[yOff + r1] = s1;
            y[yOff + r2] = s2;
            y[yOff + r3] = s3;
        }
    }

    /** As {@link #f32}, for bfloat16 weights. */
    static void bf16(MemorySegment w, int cols, float[] x, int xOff, float[] y, int yOff, int rowFrom, int rowTo) {
        long rowBytes = 2L * cols;
        int upper = cols - cols % LANES;
        int last = rowTo - 1;
        for (int r = rowFrom; r < rowTo; r += 4) {
            int r1 = Math.min(r + 1, last), r2 = Math.min(r + 2, last), r3 = Math.min(r + 3, last);
            long b0 = r * rowBytes, b1 = r1 * rowBytes, b2 = r2 * rowBytes, b3 = r3 * rowBytes;
            FloatVector a0 = FloatVector.zero(FLOATS), a1 = a0, a2 = a0, a3 = a0;
            for (int c = 0; c < upper; c += LANES) {
                FloatVector xv = FloatVector.fromArray(FLOATS, x, xOff + c);
                long o = 2L * c;
                a0 = WeightVectors.bf16(w, b0 + o).fma(xv, a0);
                a1 = WeightVectors.bf16(w, b1 + o).fma(xv, a1);
                a2 = WeightVectors.bf16(w, b2 + o).fma(xv, a2);
                a3 = WeightVectors.bf16(w, b3 + o).fma(xv, a3);
            }
            float s0 = Simd.sum(a0), s1 = Simd.sum(a1);
            float s2 = Simd.sum(a2), s3 = Simd.sum(a3);
            for (int c = upper; c < cols; c++) {
                float xc = x[xOff + c];
                long o = 2L * c;
                s0 += TensorAccess.bf16ToFloat(w.get(TensorAccess.I16_LE, b0 + o)) * xc;
                s1 += TensorAccess.bf16ToFloat(w.get(TensorAccess.I16_LE, b1 + o)) * xc;
                s2 += TensorAccess.bf16ToFloat(w.get(TensorAccess.I16_LE, b2 + o)) * xc;
                s3 += TensorAccess.bf16ToFloat(w.get(TensorAccess.I16_LE, b3 + o)) * xc;
            }
            y[yOff + r] = s0;
            y[yOff + r1] = s1;
            y[yOff + r2] = s2;
            y[yOff + r3] = s3;
        }
    }

    /** As {@link #f32}, for float16 weights. */
    static void f16(MemorySegment w, int cols, float[] x, int xOff, float[] y, int yOff, int rowFrom, int rowTo) {
        long rowBytes = 2L * cols;
        int upper = cols - cols % LANES;
        int last = rowTo - 1;
        for (int r = rowFrom; r < rowTo; r += 4) {
            int r1 = Math.min(r + 1, last), r2 = Math.min(r + 2, last), r3 = Math.min(r + 3, last);
            long b0 = r * rowBytes, b1 = r1 * rowBytes, b2 = r2 * rowBytes, b3 = r3 * rowBytes;
            FloatVector a0 = FloatVector.zero(FLOATS), a1 = a0, a2 = a0, a3 = a0;
            for (int c = 0; c < upper; c += LANES) {
                FloatVector xv = FloatVector.fromArray(FLOATS, x, xOff + c);
                long o = 2L * c;
                a0 = WeightVectors.f16(w, b0 + o).fma(xv, a0);
                a1 = WeightVectors.f16(w, b1 + o).fma(xv, a1);
                a2 = WeightVectors.f16(w, b2 + o).fma(xv, a2);
                a3 = WeightVectors.f16(w, b3 + o).fma(xv, a3);
            }
            float s0 = Simd.sum(a0), s1 = Simd.sum(a1);
            float s2 = Simd.sum(a2), s3 = Simd.sum(a3);
            for (int c = upper; c < cols; c++) {
                float xc = x[xOff + c];
                long o = 2L * c;
                s0 += Float.float16ToFloat(w.get(TensorAccess.I16_LE, b0 + o)) * xc;
                s1 += Float.float16ToFloat(w.get(TensorAccess.I16_LE, b1 + o)) * xc;
                s2 += Float.float16ToFloat(w.get(TensorAccess.I16_LE, b2 + o)) * xc;
                s3 += Float.float16ToFloat(w.get(TensorAccess.I16_LE, b3 + o)) * xc;
            }
            y[yOff + r] = s0;
            y[yOff + r1] = s1;
            y[yOff + r2] = s2;
            y[yOff + r3] = s3;
        }
    }
}
