package io.moeserve.runtime.kernel;

import static io.moeserve.runtime.kernel.Simd.FLOATS;
import static io.moeserve.runtime.kernel.Simd.LANES;
import static io.moeserve.runtime.kernel.SmallBatchKernel.SUMS;
import static io.moeserve.runtime.kernel.SmallBatchKernel.TAILS;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Quantization;
import io.moeserve.runtime.tensor.Quantization.Scheme;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;

/**
 * {@link SmallBatchKernel} for quantized weights: a few tokens (2 to {@value SmallBatchKernel#MAX_TOKENS}) times
 * int8 or int4 weights on the group path ({@link QuantizedKernel}), each weight vector dequantized in registers once
 * per tile and used for 4 tokens.
 *
 * <p>Why. Before this kernel, 2 to 8 tokens of quantized weights went through the packed {@link GemmKernel}, which
 * dequantizes every row into a float32 panel, stores it and reads it back for those few tokens: at batch 4 (every
 * dense product and the lm head of a decode step with 4 sequences) that extra pass over the weights cost more than
 * the arithmetic it fed, so int4 decoded more slowly at batch 4 than at batch 1.
 *
 * <p>Design. Exactly {@link SmallBatchKernel}'s tiles (4 rows a quarter of the range apart × 4 tokens, 16
 * accumulators, clamped rows and tokens that repeat a real one, the zero-padded last vector, {@link Simd#sumEach}),
 * with the weight vector of each row made as the one-token kernel makes it: one scale broadcast per group and row (at
 * 512 bits for int4, the group's 16-entry table instead; the scales decoded into scratch once per tile row), then per
 * vector the codes widened to int lanes
 * and converted and scaled, or looked up. Each weight is thus the float32 of the format's formula, and each (row,
 * token) sum takes the operations of the float32 path in their order, so a token's result has the bits of the
 * float32 matrix of the dequantized weights through SmallBatchKernel, which are those of the one-token kernel and
 * the packed GEMM: it does not depend on its batch. Other layouts (zero points, blocks of several rows, int3, int2,
 * FP8, MXFP4) keep the packed GEMM. One tile method per scheme, as SmallBatchKernel has one per dtype; int4's covers
 * half a tile (2 rows × 4 tokens), called twice, since C2 stopped inlining the nibble loads of a whole tile (a load
 * left as a call returns its vector boxed, and the tile ran at a third of the GEMM's speed).
 */
final class QuantizedSmallBatchKernel {

    /** Where the scratch holds the tile's four rows of scales, after {@link SmallBatchKernel}'s layout. */
    private static final int SCALES = TAILS + 4 * LANES;

    private QuantizedSmallBatchKernel() {}

    /** The scratch {@link #multiply} needs for {@code w}: SmallBatchKernel's, and four rows of scales. */
    static int scratchLength(WeightMatrix w) {
        return SCALES + 4 * w.quantization().scaleColumns(w.cols());
    }

    /** Whether this kernel takes {@code w}: int8 or int4 codes on the group path. */
    static boolean handles(WeightMatrix w) {
        Quantization q = w.quantization();
        Scheme s = q.scheme();
        return (s == Scheme.INT8 || s == Scheme.PACKED_INT8 || s == Scheme.PACKED_INT4) && QuantizedKernel.groupPath(q);
    }

    /**
     * {@code y[t][r] = Σ_c x[t][c] · W[r][c]} for {@code rowFrom <= r < rowTo}, {@code tokenFrom <= t < tokenTo},
     * as {@link SmallBatchKernel#multiply}, for a matrix this kernel {@link #handles}; scratch of at least
     * {@link #scratchLength} floats.
     */
    static void multiply(WeightMatrix w, float[] x, int xOff, float[] y, int yOff, int rowFrom, int rowTo, int tokenFrom,
                         int tokenTo, float[] scratch) {
        Quantization q = w.quantization();
        MemorySegment data = w.data();
        MemorySegment scales = q.scales();
        DType type = q.scaleType();
        Scheme scheme = q.scheme();
        int rows = w.rows();
        int cols = w.cols();
        long stride = w.rowBytes();
        int sc = q.scaleColumns(cols);
        int bc = q.blockCols();
        int upper = cols - cols % LANES;
        int rest = cols - upper;
        int lastRow = rowTo - 1;
        int lastToken = tokenTo - 1;
        int quarter = (rowTo - rowFrom + 3) / 4;
        for (int r = rowFrom; r < rowFrom + quarter; r++) {
            int r1 = Math.min(r + quarter, lastRow), r2 = Math.min(r + 2 * quarter, lastRow), r3 = Math.min(r + 3 * quarter, lastRow);
            if (rest > 0) {
                padTail(w, upper, rest, r, scratch, TAILS);
                padTail(w, upper, rest, r1, scratch, TAILS + LANES);
                padTail(w, upper, rest, r2, scratch, TAILS + 2 * LANES);
                padTail(w, upper, rest, r3, scratch, TAILS + 3 * LANES);
            }
            long b0 = r * stride, b1 = r1 * stride, b2 = r2 * stride, b3 = r3 * stride;
            // The four rows' scales, decoded once per tile row instead of once per group of tokens, and read in the
            // tiles as floats: decoding them there made the tiles too big for C2 to inline their loads.
            for (int g = 0; g < sc; g++) {
                scratch[SCALES + g] = QuantizedKernel.scale(scales, type, (long) r * sc + g);
                scratch[SCALES + sc + g] = QuantizedKernel.scale(scales, type, (long) r1 * sc + g);
                scratch[SCALES + 2 * sc + g] = QuantizedKernel.scale(scales, type, (long) r2 * sc + g);
                scratch[SCALES + 3 * sc + g] = QuantizedKernel.scale(scales, type, (long) r3 * sc + g);
            }
            for (int t = tokenFrom; t < tokenTo; t += 4) {
                int t1 = Math.min(t + 1, lastToken), t2 = Math.min(t + 2, lastToken), t3 = Math.min(t + 3, lastToken);
                int x0 = xOff + t * cols, x1 = xOff + t1 * cols, x2 = xOff + t2 * cols, x3 = xOff + t3 * cols;
                switch (scheme) {
                    case INT8 -> tileInt8(data, bc, sc, b0, b1, b2, b3, x, x0, x1, x2, x3, upper, scratch);
                    case PACKED_INT8 -> tilePackedInt8(data, bc, sc, b0, b1, b2, b3, x, x0, x1, x2, x3, upper, scratch);
                    default -> {
                        // Int4 in halves of a tile: a whole tile's four nibble spreads were more than C2 inlines.
                        if (LANES == 16) {
                            tileInt4Table(data, bc, b0, b1, SCALES, SCALES + sc, x, x0, x1, x2, x3, upper, scratch, 0);
                            tileInt4Table(data, bc, b2, b3, SCALES + 2 * sc, SCALES + 3 * sc, x, x0, x1, x2, x3, upper, scratch,
                                    8 * LANES);
                        } else {
                            tilePackedInt4(data, bc, b0, b1, SCALES, SCALES + sc, x, x0, x1, x2, x3, upper, scratch, 0);
                            tilePackedInt4(data, bc, b2, b3, SCALES + 2 * sc, SCALES + 3 * sc, x, x0, x1, x2, x3, upper, scratch,
                                    8 * LANES);
                        }
                    }
                }
                if (rest > 0) SmallBatchKernel.lastVector(x, x0 + upper, x1 + upper, x2 + upper, x3 + upper, rest, scratch);
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

    /** Row r's last {@code rest} weights by the scalar formula, then zeros to a whole vector (the GEMM's padding). */
    private static void padTail(WeightMatrix w, int upper, int rest, int r, float[] dst, int off) {
        Quantization q = w.quantization();
        for (int i = 0; i < LANES; i++) dst[off + i] = i < rest ? q.weight(w.data(), w.cols(), r, upper + i) : 0f;
    }

    /** The {@code INT8} main loop of one tile: 4 rows × 4 tokens over the whole vectors of columns. */
    private static void tileInt8(MemorySegment data, int bc, int sc, long b0, long b1, long b2, long b3, float[] x,
                                  int x0, int x1, int x2, int x3, int upper, float[] acc) {
        FloatVector a00 = FloatVector.zero(FLOATS), a01 = a00, a02 = a00, a03 = a00;
        FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        for (int c = 0; c < upper; ) {
            int g = c / bc;
            FloatVector s0 = FloatVector.broadcast(FLOATS, acc[SCALES + g]);
            FloatVector s1 = FloatVector.broadcast(FLOATS, acc[SCALES + sc + g]);
            FloatVector s2 = FloatVector.broadcast(FLOATS, acc[SCALES + 2 * sc + g]);
            FloatVector s3 = FloatVector.broadcast(FLOATS, acc[SCALES + 3 * sc + g]);
            for (int end = Math.min((g + 1) * bc, upper); c < end; c += LANES) {
                FloatVector v0 = FloatVector.fromArray(FLOATS, x, x0 + c);
                FloatVector v1 = FloatVector.fromArray(FLOATS, x, x1 + c);
                FloatVector v2 = FloatVector.fromArray(FLOATS, x, x2 + c);
                FloatVector v3 = FloatVector.fromArray(FLOATS, x, x3 + c);
                FloatVector q = ((FloatVector) QuantizedKernel.signedBytes(data, b0 + c).convert(VectorOperators.I2F, 0)).mul(s0);
                a00 = q.fma(v0, a00);
                a01 = q.fma(v1, a01);
                a02 = q.fma(v2, a02);
                a03 = q.fma(v3, a03);
                q = ((FloatVector) QuantizedKernel.signedBytes(data, b1 + c).convert(VectorOperators.I2F, 0)).mul(s1);
                a10 = q.fma(v0, a10);
                a11 = q.fma(v1, a11);
                a12 = q.fma(v2, a12);
                a13 = q.fma(v3, a13);
                q = ((FloatVector) QuantizedKernel.signedBytes(data, b2 + c).convert(VectorOperators.I2F, 0)).mul(s2);
                a20 = q.fma(v0, a20);
                a21 = q.fma(v1, a21);
                a22 = q.fma(v2, a22);
                a23 = q.fma(v3, a23);
                q = ((FloatVector) QuantizedKernel.signedBytes(data, b3 + c).convert(VectorOperators.I2F, 0)).mul(s3);
                a30 = q.fma(v0, a30);
                a31 = q.fma(v1, a31);
                a32 = q.fma(v2, a32);
                a33 = q.fma(v3, a33);
            }
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

    /** The {@code PACKED_INT8} main loop of one tile. */
    private static void tilePackedInt8(MemorySegment data, int bc, int sc, long b0, long b1, long b2, long b3, float[] x,
                                  int x0, int x1, int x2, int x3, int upper, float[] acc) {
        FloatVector a00 = FloatVector.zero(FLOATS), a01 = a00, a02 = a00, a03 = a00;
        FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        for (int c = 0; c < upper; ) {
            int g = c / bc;
            FloatVector s0 = FloatVector.broadcast(FLOATS, acc[SCALES + g]);
            FloatVector s1 = FloatVector.broadcast(FLOATS, acc[SCALES + sc + g]);
            FloatVector s2 = FloatVector.broadcast(FLOATS, acc[SCALES + 2 * sc + g]);
            FloatVector s3 = FloatVector.broadcast(FLOATS, acc[SCALES + 3 * sc + g]);
            for (int end = Math.min((g + 1) * bc, upper); c < end; c += LANES) {
                FloatVector v0 = FloatVector.fromArray(FLOATS, x, x0 + c);
                FloatVector v1 = FloatVector.fromArray(FLOATS, x, x1 + c);
                FloatVector v2 = FloatVector.fromArray(FLOATS, x, x2 + c);
                FloatVector v3 = FloatVector.fromArray(FLOATS, x, x3 + c);
                FloatVector q = ((FloatVector) QuantizedKernel.offsetBytes(data, b0 + c).convert(VectorOperators.I2F, 0)).mul(s0);
                a00 = q.fma(v0, a00);
                a01 = q.fma(v1, a01);
                a02 = q.fma(v2, a02);
                a03 = q.fma(v3, a03);
                q = ((FloatVector) QuantizedKernel.offsetBytes(data, b1 + c).convert(VectorOperators.I2F, 0)).mul(s1);
                a10 = q.fma(v0, a10);
                a11 = q.fma(v1, a11);
                a12 = q.fma(v2, a12);
                a13 = q.fma(v3, a13);
                q = ((FloatVector) QuantizedKernel.offsetBytes(data, b2 + c).convert(VectorOperators.I2F, 0)).mul(s2);
                a20 = q.fma(v0, a20);
                a21 = q.fma(v1, a21);
                a22 = q.fma(v2, a22);
                a23 = q.fma(v3, a23);
                q = ((FloatVector) QuantizedKernel.offsetBytes(data, b3 + c).convert(VectorOperators.I2F, 0)).mul(s3);
                a30 = q.fma(v0, a30);
                a31 = q.fma(v1, a31);
                a32 = q.fma(v2, a32);
                a33 = q.fma(v3, a33);
            }
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

    /** The {@code PACKED_INT4} main loop of half a tile (2 rows × 4 tokens) below 512 bits: codes converted and scaled. */
    private static void tilePackedInt4(MemorySegment data, int bc, long b0, long b1, int k0, int k1, float[] x, int x0,
                                  int x1, int x2, int x3, int upper, float[] acc, int at) {
        FloatVector a00 = FloatVector.zero(FLOATS), a01 = a00, a02 = a00, a03 = a00;
        FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        for (int c = 0; c < upper; ) {
            int g = c / bc;
            FloatVector s0 = FloatVector.broadcast(FLOATS, acc[k0 + g]);
            FloatVector s1 = FloatVector.broadcast(FLOATS, acc[k1 + g]);
            for (int end = Math.min((g + 1) * bc, upper); c < end; c += LANES) {
                FloatVector v0 = FloatVector.fromArray(FLOATS, x, x0 + c);
                FloatVector v1 = FloatVector.fromArray(FLOATS, x, x1 + c);
                FloatVector v2 = FloatVector.fromArray(FLOATS, x, x2 + c);
                FloatVector v3 = FloatVector.fromArray(FLOATS, x, x3 + c);
                FloatVector q = ((FloatVector) QuantizedKernel.nibbles(data, b0 + c / 2).convert(VectorOperators.I2F, 0)).mul(s0);
                a00 = q.fma(v0, a00);
                a01 = q.fma(v1, a01);
                a02 = q.fma(v2, a02);
                a03 = q.fma(v3, a03);
                q = ((FloatVector) QuantizedKernel.nibbles(data, b1 + c / 2).convert(VectorOperators.I2F, 0)).mul(s1);
                a10 = q.fma(v0, a10);
                a11 = q.fma(v1, a11);
                a12 = q.fma(v2, a12);
                a13 = q.fma(v3, a13);
            }
        }
        a00.intoArray(acc, at);
        a01.intoArray(acc, at + LANES);
        a02.intoArray(acc, at + 2 * LANES);
        a03.intoArray(acc, at + 3 * LANES);
        a10.intoArray(acc, at + 4 * LANES);
        a11.intoArray(acc, at + 5 * LANES);
        a12.intoArray(acc, at + 6 * LANES);
        a13.intoArray(acc, at + 7 * LANES);
    }

    /** The {@code PACKED_INT4} main loop of half a tile at 512 bits: codes looked up in the group's table. */
    private static void tileInt4Table(MemorySegment data, int bc, long b0, long b1, int k0, int k1, float[] x, int x0,
                                  int x1, int x2, int x3, int upper, float[] acc, int at) {
        FloatVector a00 = FloatVector.zero(FLOATS), a01 = a00, a02 = a00, a03 = a00;
        FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        for (int c = 0; c < upper; ) {
            int g = c / bc;
            IntVector t0 = QuantizedKernel.INT4_VALUES.mul(acc[k0 + g]).reinterpretAsInts();
            IntVector t1 = QuantizedKernel.INT4_VALUES.mul(acc[k1 + g]).reinterpretAsInts();
            for (int end = Math.min((g + 1) * bc, upper); c < end; c += LANES) {
                FloatVector v0 = FloatVector.fromArray(FLOATS, x, x0 + c);
                FloatVector v1 = FloatVector.fromArray(FLOATS, x, x1 + c);
                FloatVector v2 = FloatVector.fromArray(FLOATS, x, x2 + c);
                FloatVector v3 = FloatVector.fromArray(FLOATS, x, x3 + c);
                FloatVector q = QuantizedKernel.unsignedNibbles(data, b0 + c / 2).selectFrom(t0).reinterpretAsFloats();
                a00 = q.fma(v0, a00);
                a01 = q.fma(v1, a01);
                a02 = q.fma(v2, a02);
                a03 = q.fma(v3, a03);
                q = QuantizedKernel.unsignedNibbles(data, b1 + c / 2).selectFrom(t1).reinterpretAsFloats();
                a10 = q.fma(v0, a10);
                a11 = q.fma(v1, a11);
                a12 = q.fma(v2, a12);
                a13 = q.fma(v3, a13);
            }
        }
        a00.intoArray(acc, at);
        a01.intoArray(acc, at + LANES);
        a02.intoArray(acc, at + 2 * LANES);
        a03.intoArray(acc, at + 3 * LANES);
        a10.intoArray(acc, at + 4 * LANES);
        a11.intoArray(acc, at + 5 * LANES);
        a12.intoArray(acc, at + 6 * LANES);
        a13.intoArray(acc, at + 7 * LANES);
    }
}
