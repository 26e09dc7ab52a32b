package io.moeserve.runtime.kernel;

import static io.moeserve.runtime.kernel.Simd.FLOATS;
import static io.moeserve.runtime.kernel.Simd.INTS;
import static io.moeserve.runtime.kernel.Simd.LANES;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Quantization;
import io.moeserve.runtime.tensor.Quantization.Scheme;
import io.moeserve.runtime.tensor.TensorAccess;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Products with quantized weights ({@link Quantization}), each weight dequantized in registers as it is read: never
 * a whole matrix widened to float.
 *
 * <p>Design. Every weight becomes, lane by lane, exactly the float32 the format's formula gives
 * ({@code float(q − zp) · scale}, or {@code e4m3(q) · scale}), and then takes the path a float32 weight takes in
 * {@link MatvecKernel} (one accumulator vector per row over columns in steps of LANES, {@link Simd#sum}, the column
 * tail added in scalar) or, through {@link #widen}, in the packed {@link GemmKernel}. So a quantized matrix computes
 * bit for bit what the float32 matrix of its dequantized weights computes, at every vector width and batch size:
 * the exactness tests compare against that matrix, and a token's result does not depend on its batch.
 *
 * <p>Scales and zero points are per block of columns ({@link Quantization}). The common layout (integer codes, one
 * scale per group of columns a whole number of vectors wide, no zero points: compressed-tensors' group and channel
 * strategies, {@code moe quantize}'s output) takes the group path: two rows far apart at a time, as
 * {@link MatvecKernel} reads them, one scale read and broadcast per group, one small loop per scheme (C2 compiles a
 * loop holding every decoding badly). Everything else takes one general loop per row: a run of whole vectors inside
 * one block uses one broadcast scale and zero point; a vector that straddles blocks gets its lanes' scales and zero
 * points by blending, block by block, which costs more but computes the same weights.
 *
 * <p>Codes reach int lanes by scheme: bytes (FP8, int8) through a byte vector of LANES lanes; packed int4 (LANES / 2
 * bytes) as one scalar load whose nibbles are spread over the lanes by a variable shift. At 128 bits there is no
 * 4-lane byte vector, so bytes go the scalar way too.
 */
final class QuantizedKernel {

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);

    /** Byte lanes as many as float lanes, or null at 128 bits (no 32-bit vector shape). */
    private static final VectorSpecies<Byte> BYTES = LANES >= 8
            ? VectorSpecies.of(byte.class, VectorShape.forBitSize(LANES * 8)) : null;
    private static final FloatVector FLOAT_IOTA = FloatVector.zero(FLOATS).addIndex(1);
    private static final IntVector INT_IOTA = IntVector.zero(INTS).addIndex(1);
    /** Lane i: 4·(i mod 8), the shift of nibble i within its int32 word. */
    private static final IntVector NIBBLE_SHIFTS = INT_IOTA.and(7).lanewise(VectorOperators.LSHL, 2);
    /** Lane i: 8·(3 − i mod 4), to move byte i of a broadcast word to the top (128-bit byte path). */
    private static final IntVector BYTE_SHIFTS = IntVector.broadcast(INTS, 3).sub(INT_IOTA.and(3))
            .lanewise(VectorOperators.LSHL, 3);
    private static final VectorMask<Integer> UPPER_EIGHT = INT_IOTA.compare(VectorOperators.GE, 8);

    private QuantizedKernel() {}

    /**
     * Whether rows can take the group fast path: one row of scales per row, groups a whole number of vectors wide,
     * no zero points (the layout of compressed-tensors' group and channel strategies, and of {@code moe quantize}).
     * Then each group costs one scale read and broadcast per row, with no straddling checks, two rows at a time.
     */
    private static boolean groupPath(Quantization q) {
        return q.scheme().isInteger() && q.blockRows() == 1 && q.blockCols() % LANES == 0 && q.zeroPoints() == null;
    }

    /** Scale {@code index}, widened to float: the switch on a loop-invariant dtype costs a predicted branch. */
    private static float scale(MemorySegment scales, DType type, long index) {
        if (type == DType.BF16) return Float.intBitsToFloat(scales.get(I16, 2 * index) << 16);
        if (type == DType.F16) return Float.float16ToFloat(scales.get(I16, 2 * index));
        return scales.get(TensorAccess.F32_LE, 4 * index);
    }

    /** {@code y[yOff + r] = Σ_c x[xOff + c] · W[r][c]} for {@code rowFrom <= r < rowTo}. */
    static void matvec(WeightMatrix w, float[] x, int xOff, float[] y, int yOff, int rowFrom, int rowTo) {
        Quantization q = w.quantization();
        if (q.scheme() == Scheme.E4M3) {
            matvecE4m3(w, x, xOff, y, yOff, rowFrom, rowTo);
        } else if (groupPath(q)) {
            matvecGroups(w, x, xOff, y, yOff, rowFrom, rowTo);
        } else {
            matvecIntegers(w, x, xOff, y, yOff, rowFrom, rowTo);
        }
    }

    /**
     * The group fast path ({@link #groupPath}): two rows far apart at a time, as MatvecKernel reads them (two
     * sequential streams for the prefetchers), each pair by the loop of its scheme.
     */
    private static void matvecGroups(WeightMatrix w, float[] x, int xOff, float[] y, int yOff, int rowFrom, int rowTo) {
        int half = (rowTo - rowFrom) / 2;
        for (int r = rowFrom; r < rowFrom + half; r++) rowPair(w, x, xOff, y, yOff, r, r + half);
        if ((rowTo - rowFrom) % 2 != 0) rowPair(w, x, xOff, y, yOff, rowTo - 1, rowTo - 1);
    }

    /** Rows r0 and r1 (possibly the same) on the group path: whole vectors by the scheme's loop, then the tail. */
    private static void rowPair(WeightMatrix w, float[] x, int xOff, float[] y, int yOff, int r0, int r1) {
        Quantization q = w.quantization();
        MemorySegment data = w.data();
        int cols = w.cols();
        int upper = cols - cols % LANES;
        long stride = w.rowBytes();
        int sc = q.scaleColumns(cols);
        int bc = q.blockCols();
        switch (q.scheme()) {
            case INT8 -> groupsInt8(data, stride, q, sc, bc, upper, x, xOff, y, yOff, r0, r1);
            case PACKED_INT8 -> groupsPackedInt8(data, stride, q, sc, bc, upper, x, xOff, y, yOff, r0, r1);
            default -> groupsPackedInt4(data, stride, q, sc, bc, upper, x, xOff, y, yOff, r0, r1);
        }
        y[yOff + r0] = finish(w, r0, y[yOff + r0], x, xOff, upper);
        if (r1 != r0) y[yOff + r1] = finish(w, r1, y[yOff + r1], x, xOff, upper);
    }

    /**
     * Integer codes off the group path (zero points, blocks of several rows, blocks that straddle vectors): one row
     * at a time, a run of whole vectors inside a block at a time. Rarer layouts, so one loop for all three schemes.
     */
    private static void matvecIntegers(WeightMatrix w, float[] x, int xOff, float[] y, int yOff, int rowFrom, int rowTo) {
        Quantization q = w.quantization();
        Scheme scheme = q.scheme();
        MemorySegment data = w.data();
        int cols = w.cols();
        long stride = w.rowBytes();
        int upper = cols - cols % LANES;
        int bc = q.blockCols();
        int sc = q.scaleColumns(cols);
        for (int r = rowFrom; r < rowTo; r++) {
            long row = r * stride;
            int rb = r / q.blockRows();
            FloatVector acc = FloatVector.zero(FLOATS);
            for (int c = 0; c < upper; ) {
                int end = runEnd(c, bc, upper);
                if (end > c) {
                    int cb = c / bc;
                    FloatVector s = FloatVector.broadcast(FLOATS, q.scale(rb, cb, sc));
                    int z = q.zeroPoint(rb, cb, sc);
                    for (; c < end; c += LANES) {
                        acc = dequantize(codes(scheme, data, row, c), z, s).fma(FloatVector.fromArray(FLOATS, x, xOff + c), acc);
                    }
                } else {
                    acc = dequantize(codes(scheme, data, row, c), q, rb, c, sc)
                            .fma(FloatVector.fromArray(FLOATS, x, xOff + c), acc);
                    c += LANES;
                }
            }
            y[yOff + r] = finish(w, r, Simd.sum(acc), x, xOff, upper);
        }
    }

    /** The LANES integer codes of columns [c, c + LANES) of the row at byte {@code row}. */
    private static IntVector codes(Scheme scheme, MemorySegment data, long row, int c) {
        return switch (scheme) {
            case INT8 -> signedBytes(data, row + c);
            case PACKED_INT8 -> offsetBytes(data, row + c);
            default -> nibbles(data, row + c / 2);
        };
    }

    private static void matvecE4m3(WeightMatrix w, float[] x, int xOff, float[] y, int yOff, int rowFrom, int rowTo) {
        Quantization q = w.quantization();
        MemorySegment data = w.data();
        int cols = w.cols();
        int upper = cols - cols % LANES;
        int bc = q.blockCols();
        int sc = q.scaleColumns(cols);
        for (int r = rowFrom; r < rowTo; r++) {
            long row = r * (long) cols;
            int rb = r / q.blockRows();
            FloatVector acc = FloatVector.zero(FLOATS);
            for (int c = 0; c < upper; ) {
                int end = runEnd(c, bc, upper);
                if (end > c) {
                    FloatVector s = FloatVector.broadcast(FLOATS, q.scale(rb, c / bc, sc));
                    for (; c < end; c += LANES) {
                        acc = e4m3(data, row + c).mul(s).fma(FloatVector.fromArray(FLOATS, x, xOff + c), acc);
                    }
                } else {
                    acc = e4m3(data, row + c).mul(blockScales(q, rb, c, sc))
                            .fma(FloatVector.fromArray(FLOATS, x, xOff + c), acc);
                    c += LANES;
                }
            }
            y[yOff + r] = finish(w, r, Simd.sum(acc), x, xOff, upper);
        }
    }

    /**
     * Rows r0 and r1 (which may be the same row) over their whole vectors, on the group fast path
     * ({@link #groupPath}), into y. Vectors stay inside this method: one returned from a loop-carrying method is
     * boxed at every iteration, which made an earlier version three times slower.
     */
    private static void groupsInt8(MemorySegment data, long stride, Quantization q, int sc, int bc, int upper, float[] x,
                                   int xOff, float[] y, int yOff, int r0, int r1) {
        MemorySegment scales = q.scales();
        DType type = q.scaleType();
        long row0 = r0 * stride, row1 = r1 * stride;
        long scaleRow0 = (long) r0 * sc, scaleRow1 = (long) r1 * sc;
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        for (int c = 0; c < upper; ) {
            int g = c / bc;
            FloatVector s0 = FloatVector.broadcast(FLOATS, scale(scales, type, scaleRow0 + g));
            FloatVector s1 = FloatVector.broadcast(FLOATS, scale(scales, type, scaleRow1 + g));
            for (int end = Math.min((g + 1) * bc, upper); c < end; c += LANES) {
                FloatVector xv = FloatVector.fromArray(FLOATS, x, xOff + c);
                a0 = ((FloatVector) signedBytes(data, row0 + c).convert(VectorOperators.I2F, 0)).mul(s0).fma(xv, a0);
                a1 = ((FloatVector) signedBytes(data, row1 + c).convert(VectorOperators.I2F, 0)).mul(s1).fma(xv, a1);
            }
        }
        y[yOff + r0] = Simd.sum(a0);
        y[yOff + r1] = Simd.sum(a1);
    }

    /**
     * Rows r0 and r1 (which may be the same row) over their whole vectors, on the group fast path
     * ({@link #groupPath}), into y. Vectors stay inside this method: one returned from a loop-carrying method is
     * boxed at every iteration, which made an earlier version three times slower.
     */
    private static void groupsPackedInt8(MemorySegment data, long stride, Quantization q, int sc, int bc, int upper, float[] x,
                                   int xOff, float[] y, int yOff, int r0, int r1) {
        MemorySegment scales = q.scales();
        DType type = q.scaleType();
        long row0 = r0 * stride, row1 = r1 * stride;
        long scaleRow0 = (long) r0 * sc, scaleRow1 = (long) r1 * sc;
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        for (int c = 0; c < upper; ) {
            int g = c / bc;
            FloatVector s0 = FloatVector.broadcast(FLOATS, scale(scales, type, scaleRow0 + g));
            FloatVector s1 = FloatVector.broadcast(FLOATS, scale(scales, type, scaleRow1 + g));
            for (int end = Math.min((g + 1) * bc, upper); c < end; c += LANES) {
                FloatVector xv = FloatVector.fromArray(FLOATS, x, xOff + c);
                a0 = ((FloatVector) offsetBytes(data, row0 + c).convert(VectorOperators.I2F, 0)).mul(s0).fma(xv, a0);
                a1 = ((FloatVector) offsetBytes(data, row1 + c).convert(VectorOperators.I2F, 0)).mul(s1).fma(xv, a1);
            }
        }
        y[yOff + r0] = Simd.sum(a0);
        y[yOff + r1] = Simd.sum(a1);
    }

    /**
     * Rows r0 and r1 (which may be the same row) over their whole vectors, on the group fast path
     * ({@link #groupPath}), into y. Vectors stay inside this method: one returned from a loop-carrying method is
     * boxed at every iteration, which made an earlier version three times slower.
     */
    private static void groupsPackedInt4(MemorySegment data, long stride, Quantization q, int sc, int bc, int upper, float[] x,
                                   int xOff, float[] y, int yOff, int r0, int r1) {
        MemorySegment scales = q.scales();
        DType type = q.scaleType();
        long row0 = r0 * stride, row1 = r1 * stride;
        long scaleRow0 = (long) r0 * sc, scaleRow1 = (long) r1 * sc;
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        for (int c = 0; c < upper; ) {
            int g = c / bc;
            FloatVector s0 = FloatVector.broadcast(FLOATS, scale(scales, type, scaleRow0 + g));
            FloatVector s1 = FloatVector.broadcast(FLOATS, scale(scales, type, scaleRow1 + g));
            for (int end = Math.min((g + 1) * bc, upper); c < end; c += LANES) {
                FloatVector xv = FloatVector.fromArray(FLOATS, x, xOff + c);
                a0 = ((FloatVector) nibbles(data, row0 + c / 2).convert(VectorOperators.I2F, 0)).mul(s0).fma(xv, a0);
                a1 = ((FloatVector) nibbles(data, row1 + c / 2).convert(VectorOperators.I2F, 0)).mul(s1).fma(xv, a1);
            }
        }
        y[yOff + r0] = Simd.sum(a0);
        y[yOff + r1] = Simd.sum(a1);
    }

    /**
     * Dequantizes row {@code row}'s weights into {@code dst[dstOffset ..]}, then zeros up to {@code paddedCount}: the
     * packed GEMM's panel, with the very floats the matrix-vector product multiplies.
     */
    static void widen(WeightMatrix w, int row, float[] dst, int dstOffset, int paddedCount) {
        Quantization q = w.quantization();
        MemorySegment data = w.data();
        int cols = w.cols();
        long rowStart = row * w.rowBytes();
        int upper = cols - cols % LANES;
        int bc = q.blockCols();
        int sc = q.scaleColumns(cols);
        int rb = row / q.blockRows();
        Scheme scheme = q.scheme();
        if (groupPath(q)) {
            // One scale per group, read once: the weights are those of the general loop below.
            for (int c = 0; c < upper; ) {
                int g = c / bc;
                FloatVector s = FloatVector.broadcast(FLOATS, scale(q.scales(), q.scaleType(), (long) row * sc + g));
                for (int end = Math.min((g + 1) * bc, upper); c < end; c += LANES) {
                    ((FloatVector) codes(scheme, data, rowStart, c).convert(VectorOperators.I2F, 0)).mul(s).intoArray(dst, dstOffset + c);
                }
            }
            for (int c = upper; c < cols; c++) dst[dstOffset + c] = q.weight(data, cols, row, c);
            for (int c = cols; c < paddedCount; c++) dst[dstOffset + c] = 0f;
            return;
        }
        for (int c = 0; c < upper; c += LANES) {
            FloatVector v = switch (scheme) {
                case E4M3 -> e4m3(data, rowStart + c).mul(blockScales(q, rb, c, sc));
                default -> dequantize(codes(scheme, data, rowStart, c), q, rb, c, sc);
            };
            v.intoArray(dst, dstOffset + c);
        }
        for (int c = upper; c < cols; c++) dst[dstOffset + c] = q.weight(data, cols, row, c);
        for (int c = cols; c < paddedCount; c++) dst[dstOffset + c] = 0f;
    }

    /** The end of the run of whole vectors from {@code c} inside c's scale block (c itself if there is none). */
    private static int runEnd(int c, int blockCols, int upper) {
        int blockEnd = (c / blockCols + 1) * blockCols;
        int end = Math.min(blockEnd, upper);
        return c + (end - c) / LANES * LANES;
    }

    /** The row's lane sum plus its last {@code cols % LANES} weights times x, in scalar, as MatvecKernel adds them. */
    private static float finish(WeightMatrix w, int r, float sum, float[] x, int xOff, int upper) {
        Quantization q = w.quantization();
        for (int c = upper; c < w.cols(); c++) sum += q.weight(w.data(), w.cols(), r, c) * x[xOff + c];
        return sum;
    }

    /** Integer codes minus a zero point, to float, times a scale: one float32 rounding, as the formula says. */
    private static FloatVector dequantize(IntVector codes, int zero, FloatVector scale) {
        return ((FloatVector) codes.sub(zero).convert(VectorOperators.I2F, 0)).mul(scale);
    }

    /** As above for a vector that may straddle scale blocks: each lane with its own block's scale and zero point. */
    private static FloatVector dequantize(IntVector codes, Quantization q, int rb, int c, int sc) {
        return ((FloatVector) codes.sub(blockZeros(q, rb, c, sc)).convert(VectorOperators.I2F, 0)).mul(blockScales(q, rb, c, sc));
    }

    /** The scales of the LANES columns from c: one broadcast, blended block by block where they straddle blocks. */
    private static FloatVector blockScales(Quantization q, int rb, int c, int sc) {
        int bc = q.blockCols();
        int cb = c / bc;
        FloatVector s = FloatVector.broadcast(FLOATS, q.scale(rb, cb, sc));
        for (int b = cb + 1; b * bc < c + LANES && b < sc; b++) {
            s = s.blend(q.scale(rb, b, sc), FLOAT_IOTA.compare(VectorOperators.GE, b * bc - c));
        }
        return s;
    }

    /** As {@link #blockScales}, for the zero points (all 0 when symmetric). */
    private static IntVector blockZeros(Quantization q, int rb, int c, int sc) {
        int bc = q.blockCols();
        int cb = c / bc;
        IntVector z = IntVector.broadcast(INTS, q.zeroPoint(rb, cb, sc));
        if (q.zeroPoints() == null) return z;
        for (int b = cb + 1; b * bc < c + LANES && b < sc; b++) {
            z = z.blend(q.zeroPoint(rb, b, sc), INT_IOTA.compare(VectorOperators.GE, b * bc - c));
        }
        return z;
    }

    /** LANES signed bytes from {@code offset}, sign-extended to ints. */
    private static IntVector signedBytes(MemorySegment m, long offset) {
        if (BYTES != null) {
            return (IntVector) ByteVector.fromMemorySegment(BYTES, m, offset, LE).convertShape(VectorOperators.B2I, INTS, 0);
        }
        // 4 lanes: byte i to the top of lane i, then an arithmetic shift back down sign-extends it.
        return IntVector.broadcast(INTS, m.get(TensorAccess.I32_LE, offset)).lanewise(VectorOperators.LSHL, BYTE_SHIFTS)
                .lanewise(VectorOperators.ASHR, 24);
    }

    /** LANES pack-quantized int8 codes (stored q + 128) from {@code offset}, as signed ints q. */
    private static IntVector offsetBytes(MemorySegment m, long offset) {
        // A sign-extended byte u − 256·[u ≥ 128] XOR ~0x7f is u − 128: flipping bit 7 and everything above it.
        return signedBytes(m, offset).lanewise(VectorOperators.XOR, 0xffff_ff80);
    }

    /** LANES pack-quantized int4 codes (stored q + 8, two per byte, low nibble first) from byte {@code offset}. */
    private static IntVector nibbles(MemorySegment m, long offset) {
        IntVector words;
        if (LANES == 16) {
            long bits = m.get(I64, offset);
            words = IntVector.broadcast(INTS, (int) bits).blend((int) (bits >>> 32), UPPER_EIGHT);
        } else if (LANES == 8) {
            words = IntVector.broadcast(INTS, m.get(TensorAccess.I32_LE, offset));
        } else {
            words = IntVector.broadcast(INTS, m.get(I16, offset) & 0xffff);
        }
        return words.lanewise(VectorOperators.LSHR, NIBBLE_SHIFTS).and(0xf).sub(8);
    }

    /** LANES float8_e4m3fn weights from {@code offset}, decoded exactly (see TensorAccess.e4m3ToFloat). */
    private static FloatVector e4m3(MemorySegment m, long offset) {
        IntVector b = signedBytes(m, offset);
        IntVector magnitude = b.and(0x7f);
        IntVector bits = magnitude.lanewise(VectorOperators.LSHL, 20).reinterpretAsFloats().mul(0x1p120f)
                .reinterpretAsInts();
        bits = bits.blend(0x7fc0_0000, magnitude.compare(VectorOperators.EQ, 0x7f));
        return bits.or(b.and(0x8000_0000)).reinterpretAsFloats();
    }
}
