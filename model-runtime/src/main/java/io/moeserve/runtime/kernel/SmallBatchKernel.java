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
 * arithmetic it feeds: at 4 tokens this kernel moves twice the weight bytes per second the packed GEMM did. Each
 * step widens a weight vector in registers, as {@link MatvecKernel} does, and uses it against 4 tokens at once.
 *
 * <p>Design. A tile is 4 weight rows × 4 tokens, 16 accumulator vectors (21 of the 32 AVX-512 registers live). The
 * token loop runs inside the row loop, so a 4-row group is read from memory once and from L1 for every further
 * group of 4 tokens. The four rows are a quarter of the row range apart, each read front to back: four sequential
 * streams, which the prefetchers follow, where four adjacent rows are streams a few KiB apart that they follow
 * badly ({@link MatvecKernel}). Where the range does not divide by four, the last rows of the last quarters repeat
 * the range's last row (computed again, written again with the same value) instead of needing another loop; so
 * does a partial group of tokens with its last token. The last partial vector of columns is zero-padded, and the
 * lanes are reduced by {@link Simd#sumEach}: each (row, token) result is then computed by exactly the operations the
 * packed {@link GemmKernel} uses, in the same order, so a token's output has the same bits whichever kernel its
 * batch size picks and whichever tokens share its batch (splitting experts over pods relies on that).
 *
 * <p>Shape of the code. The main loop is one small method per dtype ({@link MatvecKernel} says why per dtype), and
 * the padded last vector is one method for all, working on the accumulators the main loop stored. Keep them small:
 * when this was one method per dtype, C1 could not compile it ("out of virtual registers") and a JVM whose C2 queue
 * was busy left it at a tier that runs the Vector API as plain Java objects, a hundred times slower.
 */
final class SmallBatchKernel {

    /** The most tokens for which this kernel beats packing (measured with MatmulBenchmark). */
    static final int MAX_TOKENS = 8;

    // Scratch layout: 16 accumulator vectors, then their 16 sums, then the padded last vector of each of 4 rows.
    static final int SUMS = 16 * LANES;
    static final int TAILS = SUMS + 16;

    private SmallBatchKernel() {}

    /** The length of one thread's scratch for {@link #multiply}. */
    static final int SCRATCH = TAILS + 4 * LANES;

    /** One thread's scratch for {@link #multiply}. */
    static float[] newScratch() {
        return new float[SCRATCH];
    }

    /**
     * {@code y[t][r] = Σ_c x[t][c] · W[r][c]} for {@code rowFrom <= r < rowTo}, {@code tokenFrom <= t < tokenTo},
     * with x rows of {@code cols} floats at {@code xOff} and y rows of {@code rows} floats at {@code yOff}.
     */
    static void multiply(MemorySegment w, DType dtype, int rows, int cols, float[] x, int xOff, float[] y, int yOff,
                         int rowFrom, int rowTo, int tokenFrom, int tokenTo, float[] scratch) {
        long rowBytes = (long) dtype.byteSize() * cols;
        int upper = cols - cols % LANES;
        int rest = cols - upper;
        int lastRow = rowTo - 1;
        int lastToken = tokenTo - 1;
        // A tile's four rows lie a quarter of the range apart: four sequential streams (see the class comment).
        int quarter = (rowTo - rowFrom + 3) / 4;
        for (int r = rowFrom; r < rowFrom + quarter; r++) {
            int r1 = Math.min(r + quarter, lastRow), r2 = Math.min(r + 2 * quarter, lastRow), r3 = Math.min(r + 3 * quarter, lastRow);
            if (rest > 0) {
                padTail(w, dtype, cols, upper, rest, r, scratch, TAILS);
                padTail(w, dtype, cols, upper, rest, r1, scratch, TAILS + LANES);
                padTail(w, dtype, cols, upper, rest, r2, scratch, TAILS + 2 * LANES);
                padTail(w, dtype, cols, upper, rest, r3, scratch, TAILS + 3 * LANES);
            }
            long b0 = r * rowBytes, b1 = r1 * rowBytes, b2 = r2 * rowBytes, b3 = r3 * rowBytes;
            for (int t = tokenFrom; t < tokenTo; t += 4) {
                int t1 = Math.min(t + 1, lastToken), t2 = Math.min(t + 2, lastToken), t3 = Math.min(t + 3, lastToken);
                int x0 = xOff + t * cols, x1 = xOff + t1 * cols, x2 = xOff + t2 * cols, x3 = xOff + t3 * cols;
                switch (dtype) {
                    case F32 -> tileF32(w, b0, b1, b2, b3, x, x0, x1, x2, x3, upper, scratch);
                    case BF16 -> tileBf16(w, b0, b1, b2, b3, x, x0, x1, x2, x3, upper, scratch);
                    case F16 -> tileF16(w, b0, b1, b2, b3, x, x0, x1, x2, x3, upper, scratch);
                    default -> throw new IllegalArgumentException(dtype + " weights without scales");
                }
                if (rest > 0) lastVector(x, x0 + upper, x1 + upper, x2 + upper, x3 + upper, rest, scratch);
                Simd.sumEach(scratch, 16, scratch, SUMS);
                int y0 = yOff + t * rows, y1 = yOff + t1 * rows, y2 = yOff + t2 * rows, y3 = yOff + t3 * rows;
                // Clamped rows and tokens repeat a real one: they write the same value to the same place again.
                y[y0 + r] = scratch[SUMS];
                y[y1 + r] = scratch[SUMS + 1];
                y[y2 + r] = scratch[SUMS + 2];
                y[y3 + r] = scratch[SUMS + 3];
                y[y0 + r1] = scratch[SUMS + 4];
                y[y1 + r1] = scratch[SUMS + 5];
                y[y2 + r1] = scratch[SUMS + 6];
                y[y3 + r1] = scratch[SUMS + 7];
                y[y0 + r2] = scratch[SUMS + 8];
                y[y1 + r2] = scratch[SUMS + 9];
                y[y2 + r2] = scratch[SUMS + 10];
                y[y3 + r2] = scratch[SUMS + 11];
                y[y0 + r3] = scratch[SUMS + 12];
                y[y1 + r3] = scratch[SUMS + 13];
                y[y2 + r3] = scratch[SUMS + 14];
                y[y3 + r3] = scratch[SUMS + 15];
            }
        }
    }

    /** Row r's last {@code rest} weights, widened, then zeros to a whole vector (the packed GEMM's padding). */
    private static void padTail(MemorySegment w, DType dtype, int cols, int upper, int rest, int r, float[] dst, int off) {
        long first = (long) r * cols + upper;
        for (int i = 0; i < LANES; i++) dst[off + i] = i < rest ? TensorAccess.getFloat(w, dtype, first + i) : 0f;
    }

    /** Adds the zero-padded last vector of columns to the 16 stored accumulators, as the packed GEMM does. */
    static void lastVector(float[] x, int x0, int x1, int x2, int x3, int rest, float[] acc) {
        VectorMask<Float> m = FLOATS.indexInRange(0, rest);
        FloatVector v0 = FloatVector.fromArray(FLOATS, x, x0, m);
        FloatVector v1 = FloatVector.fromArray(FLOATS, x, x1, m);
        FloatVector v2 = FloatVector.fromArray(FLOATS, x, x2, m);
        FloatVector v3 = FloatVector.fromArray(FLOATS, x, x3, m);
        for (int i = 0; i < 4; i++) {
            FloatVector q = FloatVector.fromArray(FLOATS, acc, TAILS + i * LANES);
            int a = 4 * i * LANES;
            q.fma(v0, FloatVector.fromArray(FLOATS, acc, a)).intoArray(acc, a);
            q.fma(v1, FloatVector.fromArray(FLOATS, acc, a + LANES)).intoArray(acc, a + LANES);
            q.fma(v2, FloatVector.fromArray(FLOATS, acc, a + 2 * LANES)).intoArray(acc, a + 2 * LANES);
            q.fma(v3, FloatVector.fromArray(FLOATS, acc, a + 3 * LANES)).intoArray(acc, a + 3 * LANES);
        }
    }

    /** The {@code F32} main loop of one tile: 4 rows × 4 tokens over the whole vectors of columns. */
    private static void tileF32(MemorySegment w, long b0, long b1, long b2, long b3, float[] x, int x0, int x1, int x2,
                                int x3, int upper, float[] acc) {
        FloatVector a00 = FloatVector.zero(FLOATS), a01 = a00, a02 = a00, a03 = a00;
        FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        for (int c = 0; c < upper; c += LANES) {
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
        a00.intoArray(acc, 0);
        a01.intoArray(acc, LANES);
        a02.intoArray(acc, 2 * LANES);
        a03.intoArray(acc, 3 * LANES);
        a10.intoArray(acc, 4 * LANES);
        a11.intoArray(acc, 5 * LANES);
        a12.intoArray(acc, 6 * LANES);
        a13.intoArray(acc, 7 * LANES);
        a20.intoArray(acc, 8 * LANES);
        a21.intoArray(acc, 9 * LANES);
        a22.intoArray(acc, 10 * LANES);
        a23.intoArray(acc, 11 * LANES);
        a30.intoArray(acc, 12 * LANES);
        a31.intoArray(acc, 13 * LANES);
        a32.intoArray(acc, 14 * LANES);
        a33.intoArray(acc, 15 * LANES);
    }

    /** The {@code BF16} main loop of one tile: 4 rows × 4 tokens over the whole vectors of columns. */
    private static void tileBf16(MemorySegment w, long b0, long b1, long b2, long b3, float[] x, int x0, int x1, int x2,
                                int x3, int upper, float[] acc) {
        FloatVector a00 = FloatVector.zero(FLOATS), a01 = a00, a02 = a00, a03 = a00;
        FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        for (int c = 0; c < upper; c += LANES) {
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
        a00.intoArray(acc, 0);
        a01.intoArray(acc, LANES);
        a02.intoArray(acc, 2 * LANES);
        a03.intoArray(acc, 3 * LANES);
        a10.intoArray(acc, 4 * LANES);
        a11.intoArray(acc, 5 * LANES);
        a12.intoArray(acc, 6 * LANES);
        a13.intoArray(acc, 7 * LANES);
        a20.intoArray(acc, 8 * LANES);
        a21.intoArray(acc, 9 * LANES);
        a22.intoArray(acc, 10 * LANES);
        a23.intoArray(acc, 11 * LANES);
        a30.intoArray(acc, 12 * LANES);
        a31.intoArray(acc, 13 * LANES);
        a32.intoArray(acc, 14 * LANES);
        a33.intoArray(acc, 15 * LANES);
    }

    /** The {@code F16} main loop of one tile: 4 rows × 4 tokens over the whole vectors of columns. */
    private static void tileF16(MemorySegment w, long b0, long b1, long b2, long b3, float[] x, int x0, int x1, int x2,
                                int x3, int upper, float[] acc) {
        FloatVector a00 = FloatVector.zero(FLOATS), a01 = a00, a02 = a00, a03 = a00;
        FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        for (int c = 0; c < upper; c += LANES) {
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
        a00.intoArray(acc, 0);
        a01.intoArray(acc, LANES);
        a02.intoArray(acc, 2 * LANES);
        a03.intoArray(acc, 3 * LANES);
        a10.intoArray(acc, 4 * LANES);
        a11.intoArray(acc, 5 * LANES);
        a12.intoArray(acc, 6 * LANES);
        a13.intoArray(acc, 7 * LANES);
        a20.intoArray(acc, 8 * LANES);
        a21.intoArray(acc, 9 * LANES);
        a22.intoArray(acc, 10 * LANES);
        a23.intoArray(acc, 11 * LANES);
        a30.intoArray(acc, 12 * LANES);
        a31.intoArray(acc, 13 * LANES);
        a32.intoArray(acc, 14 * LANES);
        a33.intoArray(acc, 15 * LANES);
    }
}
