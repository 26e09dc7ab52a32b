package io.moeserve.runtime.kernel;

import static io.moeserve.runtime.kernel.Simd.FLOATS;
import static io.moeserve.runtime.kernel.Simd.LANES;

import io.moeserve.runtime.tensor.DType;
import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;

/**
 * Matrix-vector product (decode, n = 1) over a range of weight rows, one method per weight dtype.
 *
 * <p>Design. A matrix-vector product reads every weight once and does one FMA per weight, so it is bound by memory
 * bandwidth, not arithmetic; the kernel's job is to keep the hardware prefetchers streaming. Each row is read front
 * to back as one sequential stream, into one accumulator vector. Two rows go at once, for two independent FMA
 * chains, but far apart: row r of the range's first half with row r of its second half. Rows side by side (as this
 * kernel once walked four at a time) are streams a few KiB apart inside the same pages, which the prefetchers
 * follow badly: on a Zen 4 VM that moved 11–12 GB/s on one thread, and the two distant streams 33–35 GB/s, the
 * same weights and the same bits. The remaining {@code cols % LANES} columns are one zero-padded vector added into
 * the accumulator, and the lanes are reduced once, at the end of a row ({@link Simd#sum}): the order
 * {@link SmallBatchKernel} and {@link GemmKernel} keep too, so a token's result does not depend on its batch, one
 * token included (a micro-batch of one token gets the bits it gets among others). An odd middle row goes alone.
 * Weights are widened in registers by {@link WeightVectors}; there is one copy of the loop per dtype because C2
 * compiles a loop that holds all three conversions badly (its inlining budget runs out and vectors spill to the
 * heap).
 */
final class MatvecKernel {

    private MatvecKernel() {}

    /** {@code y[yOff + r] = Σ_c x[xOff + c] · W[r][c]} for {@code rowFrom <= r < rowTo}, float32 weights. */
    static void f32(MemorySegment w, int cols, float[] x, int xOff, float[] y, int yOff, int rowFrom, int rowTo) {
        long rowBytes = 4L * cols;
        int upper = cols - cols % LANES;
        int rest = cols - upper;
        FloatVector xTail = rest == 0 ? null : FloatVector.fromArray(FLOATS, x, xOff + upper, FLOATS.indexInRange(0, rest));
        int half = (rowTo - rowFrom) / 2;
        for (int r = rowFrom; r < rowFrom + half; r++) {
            long b0 = r * rowBytes;
            long b1 = (r + half) * rowBytes;
            FloatVector a0 = FloatVector.zero(FLOATS);
            FloatVector a1 = a0;
            for (int c = 0; c < upper; c += LANES) {
                FloatVector xv = FloatVector.fromArray(FLOATS, x, xOff + c);
                long o = 4L * c;
                a0 = WeightVectors.f32(w, b0 + o).fma(xv, a0);
                a1 = WeightVectors.f32(w, b1 + o).fma(xv, a1);
            }
            float s0 = Simd.sum(rest == 0 ? a0 : WeightVectors.tail(w, DType.F32, b0 + 4L * upper, rest).fma(xTail, a0));
            float s1 = Simd.sum(rest == 0 ? a1 : WeightVectors.tail(w, DType.F32, b1 + 4L * upper, rest).fma(xTail, a1));
            y[yOff + r] = s0;
            y[yOff + r + half] = s1;
        }
        if ((rowTo - rowFrom) % 2 != 0) {
            int r = rowTo - 1;
            long b0 = r * rowBytes;
            FloatVector a0 = FloatVector.zero(FLOATS);
            for (int c = 0; c < upper; c += LANES) {
                a0 = WeightVectors.f32(w, b0 + 4L * c).fma(FloatVector.fromArray(FLOATS, x, xOff + c), a0);
            }
            y[yOff + r] = Simd.sum(rest == 0 ? a0 : WeightVectors.tail(w, DType.F32, b0 + 4L * upper, rest).fma(xTail, a0));
        }
    }

    /** As {@link #f32}, for bfloat16 weights. */
    static void bf16(MemorySegment w, int cols, float[] x, int xOff, float[] y, int yOff, int rowFrom, int rowTo) {
        long rowBytes = 2L * cols;
        int upper = cols - cols % LANES;
        int rest = cols - upper;
        FloatVector xTail = rest == 0 ? null : FloatVector.fromArray(FLOATS, x, xOff + upper, FLOATS.indexInRange(0, rest));
        int half = (rowTo - rowFrom) / 2;
        for (int r = rowFrom; r < rowFrom + half; r++) {
            long b0 = r * rowBytes;
            long b1 = (r + half) * rowBytes;
            FloatVector a0 = FloatVector.zero(FLOATS);
            FloatVector a1 = a0;
            for (int c = 0; c < upper; c += LANES) {
                FloatVector xv = FloatVector.fromArray(FLOATS, x, xOff + c);
                long o = 2L * c;
                a0 = WeightVectors.bf16(w, b0 + o).fma(xv, a0);
                a1 = WeightVectors.bf16(w, b1 + o).fma(xv, a1);
            }
            float s0 = Simd.sum(rest == 0 ? a0 : WeightVectors.tail(w, DType.BF16, b0 + 2L * upper, rest).fma(xTail, a0));
            float s1 = Simd.sum(rest == 0 ? a1 : WeightVectors.tail(w, DType.BF16, b1 + 2L * upper, rest).fma(xTail, a1));
            y[yOff + r] = s0;
            y[yOff + r + half] = s1;
        }
        if ((rowTo - rowFrom) % 2 != 0) {
            int r = rowTo - 1;
            long b0 = r * rowBytes;
            FloatVector a0 = FloatVector.zero(FLOATS);
            for (int c = 0; c < upper; c += LANES) {
                a0 = WeightVectors.bf16(w, b0 + 2L * c).fma(FloatVector.fromArray(FLOATS, x, xOff + c), a0);
            }
            y[yOff + r] = Simd.sum(rest == 0 ? a0 : WeightVectors.tail(w, DType.BF16, b0 + 2L * upper, rest).fma(xTail, a0));
        }
    }

    /** As {@link #f32}, for float16 weights. */
    static void f16(MemorySegment w, int cols, float[] x, int xOff, float[] y, int yOff, int rowFrom, int rowTo) {
        long rowBytes = 2L * cols;
        int upper = cols - cols % LANES;
        int rest = cols - upper;
        FloatVector xTail = rest == 0 ? null : FloatVector.fromArray(FLOATS, x, xOff + upper, FLOATS.indexInRange(0, rest));
        int half = (rowTo - rowFrom) / 2;
        for (int r = rowFrom; r < rowFrom + half; r++) {
            long b0 = r * rowBytes;
            long b1 = (r + half) * rowBytes;
            FloatVector a0 = FloatVector.zero(FLOATS);
            FloatVector a1 = a0;
            for (int c = 0; c < upper; c += LANES) {
                FloatVector xv = FloatVector.fromArray(FLOATS, x, xOff + c);
                long o = 2L * c;
                a0 = WeightVectors.f16(w, b0 + o).fma(xv, a0);
                a1 = WeightVectors.f16(w, b1 + o).fma(xv, a1);
            }
            float s0 = Simd.sum(rest == 0 ? a0 : WeightVectors.tail(w, DType.F16, b0 + 2L * upper, rest).fma(xTail, a0));
            float s1 = Simd.sum(rest == 0 ? a1 : WeightVectors.tail(w, DType.F16, b1 + 2L * upper, rest).fma(xTail, a1));
            y[yOff + r] = s0;
            y[yOff + r + half] = s1;
        }
        if ((rowTo - rowFrom) % 2 != 0) {
            int r = rowTo - 1;
            long b0 = r * rowBytes;
            FloatVector a0 = FloatVector.zero(FLOATS);
            for (int c = 0; c < upper; c += LANES) {
                a0 = WeightVectors.f16(w, b0 + 2L * c).fma(FloatVector.fromArray(FLOATS, x, xOff + c), a0);
            }
            y[yOff + r] = Simd.sum(rest == 0 ? a0 : WeightVectors.tail(w, DType.F16, b0 + 2L * upper, rest).fma(xTail, a0));
        }
    }
}
