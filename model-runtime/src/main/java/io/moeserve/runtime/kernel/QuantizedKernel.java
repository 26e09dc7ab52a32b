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
 * {@link MatvecKernel} (one accumulator vector per row over columns in steps of LANES, the column tail as one
 * zero-padded vector, then {@link Simd#sum}) or, through {@link #widen}, in the packed {@link GemmKernel}. So a
 * quantized matrix computes bit for bit what the float32 matrix of its dequantized weights computes, at every vector
 * width and batch size: the exactness tests compare against that matrix, and a token's result does not depend on its
 * batch.
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
 * bytes) and int2 (LANES / 4 bytes) as one scalar load whose nibbles or 2-bit fields are spread over the lanes by a
 * variable shift. At 128 bits there is no 4-lane byte vector, so bytes go the scalar way too. Packed int3 holds ten
 * codes per int32 word (bits 30 and 31 unused), so a vector's columns do not start on a word: LANES columns from c
 * span two or three words. Each is loaded once as a scalar, broadcast and blended into the lanes whose columns it
 * holds, then the variable shift takes each lane's field. Since c is a multiple of LANES (even), c mod 10 is one of
 * five phases, and the lanes' shifts and word indices come from a table per phase, one vector load each. (One 128-bit
 * load of four words spread over the lanes by a permute, selectFrom or rearrange, ran four times slower on JDK 25.)
 *
 * <p>Table lookup. Dequantizing by conversion (codes to int lanes, minus the offset, to float, times the scale) costs
 * more vector operations per weight than reading it, so the int4 loop looks weights up instead: a code c of a group
 * can only stand for {@code float(c − 8) · scale}, so each group and row gets the table of those 16 products, one
 * vector multiply, the very roundings of the formula, and each code vector becomes its weights by one permute
 * ({@code selectFrom}). At 512 bits it goes further, as MXFP4 below: 32 columns are one 16-byte load widened to 16
 * int lanes, whose low and high nibbles (even and odd columns) are looked up separately and put back in column order
 * by two two-vector permutes; a group's last 16 columns, where a group is not a multiple of 32 wide, look up the
 * nibbles spread as below. At 256 bits the 16 entries are two 8-lane vectors, and one two-vector permute looks a
 * nibble vector up in both; at 128 bits int4 keeps the conversion. (Int2's 4-entry table fits every width, but looked
 * up it measured no faster than converted, so int2 converts.) The GEMM's panels are widened by the same lookups at
 * 512 bits. {@code QuantizedKernelsBenchmark} times the lookups against the conversion they replaced
 * ({@link #matvecByConversion}); BENCHMARKS.md has the figures.
 *
 * <p>Few tokens. 2 to 8 tokens of int8 and int4 weights on the group path go to {@link QuantizedSmallBatchKernel},
 * which dequantizes each weight vector as these loops do and uses it for 4 tokens; other layouts go to the packed
 * GEMM through {@link #widen}.
 *
 * <p>MXFP4 (gpt-oss's experts) has its own loop: one E8M0 scale per 32 columns, no tail (columns are a multiple of
 * 32), FP4 codes that are not integers. At 512 bits a group is one 16-byte load widened to 16 int lanes, byte k in
 * lane k; its low nibbles are the even columns and its high nibbles the odd ones. The group's 16 possible weights
 * (the E2M1 table times the scale: one multiply per group) are looked up by code with one lane permute per nibble
 * vector, and two two-vector permutes interleave even and odd back into column order, so lanes accumulate the
 * columns they accumulate for a float32 matrix. Narrower vectors spread a scalar load's nibbles over the lanes (as
 * int4) and build the value's float bits from the code (exponent and mantissa bits shifted into place, then
 * rescaled by an exact 2^126), then multiply by the scale: the same product, so the same weights.
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
    /** Lane i: 2·i, the shift of 2-bit code i within the (LANES / 4)-byte load that holds it. */
    private static final IntVector CRUMB_SHIFTS = INT_IOTA.lanewise(VectorOperators.LSHL, 1);
    /** Int3 codes per int32 word (compressed-tensors' pack factor, ⌊32 / 3⌋). */
    private static final int TRIPLES = 10;
    /** For a vector from column c, at (c mod 10) / 2 · LANES + i: the shift 3 · ((c + i) mod 10) of lane i's code. */
    private static final int[] TRIPLE_SHIFTS = tripleTable(true);
    /** As TRIPLE_SHIFTS: which of the vector's words (0, 1 or 2 after word ⌊c / 10⌋) holds lane i's code. */
    private static final int[] TRIPLE_WORDS = tripleTable(false);

    private static final int MX_BLOCK = Scheme.MX_BLOCK;
    /** One MXFP4 group's 16 code bytes, at 512 bits (null otherwise). */
    private static final VectorSpecies<Byte> MX_BYTES = LANES == 16 ? ByteVector.SPECIES_128 : null;
    /** Lane i: the E2M1 value of code i, at 512 bits (null otherwise). */
    private static final FloatVector E2M1 = LANES == 16 ? FloatVector.fromArray(FLOATS, e2m1Values(), 0) : null;
    /** Lane 2k: lane k of the first vector (even columns), lane 2k + 1: lane k of the second (odd columns). */
    private static final IntVector EVEN_ODD_LOW = LANES == 16 ? INT_IOTA.lanewise(VectorOperators.ASHR, 1)
            .add(INT_IOTA.and(1).lanewise(VectorOperators.LSHL, 4)) : null;
    /** As EVEN_ODD_LOW for the group's second 16 columns. */
    private static final IntVector EVEN_ODD_HIGH = LANES == 16 ? EVEN_ODD_LOW.add(8) : null;
    /** Lane i: i − 8, the int4 value of stored code i, at 512 bits (null otherwise); times a scale, a group's table. */
    static final FloatVector INT4_VALUES = LANES == 16 ? FLOAT_IOTA.sub(8) : null;
    /** At 256 bits, lane i: i − 8, and i: the int4 values of stored codes 0..7 and 8..15 (null otherwise). */
    private static final FloatVector INT4_LOW = LANES == 8 ? FLOAT_IOTA.sub(8) : null;
    private static final FloatVector INT4_HIGH = LANES == 8 ? FLOAT_IOTA : null;

    private QuantizedKernel() {}

    private static int[] tripleTable(boolean shifts) {
        int[] t = new int[TRIPLES / 2 * LANES];
        for (int phase = 0; phase < TRIPLES / 2; phase++) {
            for (int i = 0; i < LANES; i++) {
                int column = 2 * phase + i;
                t[phase * LANES + i] = shifts ? 3 * (column % TRIPLES) : column / TRIPLES;
            }
        }
        return t;
    }

    private static float[] e2m1Values() {
        float[] v = new float[16];
        for (int code = 0; code < 16; code++) v[code] = TensorAccess.e2m1ToFloat(code);
        return v;
    }

    /**
     * Whether rows can take the group fast path: one row of scales per row, groups a whole number of vectors wide,
     * no zero points (the layout of compressed-tensors' group and channel strategies, and of {@code moe quantize}).
     * Then each group costs one scale read and broadcast per row, with no straddling checks, two rows at a time.
     */
    static boolean groupPath(Quantization q) {
        return q.scheme().isInteger() && q.blockRows() == 1 && q.blockCols() % LANES == 0 && q.zeroPoints() == null;
    }

    /** Scale {@code index}, widened to float: the switch on a loop-invariant dtype costs a predicted branch. */
    static float scale(MemorySegment scales, DType type, long index) {
        if (type == DType.BF16) return Float.intBitsToFloat(scales.get(I16, 2 * index) << 16);
        if (type == DType.F16) return Float.float16ToFloat(scales.get(I16, 2 * index));
        return scales.get(TensorAccess.F32_LE, 4 * index);
    }

    /** {@code y[yOff + r] = Σ_c x[xOff + c] · W[r][c]} for {@code rowFrom <= r < rowTo}. */
    static void matvec(WeightMatrix w, float[] x, int xOff, float[] y, int yOff, int rowFrom, int rowTo) {
        Quantization q = w.quantization();
        if (q.scheme() == Scheme.MXFP4) {
            matvecMxfp4(w, x, xOff, y, yOff, rowFrom, rowTo);
        } else if (q.scheme() == Scheme.E4M3) {
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
            case INT8 -> groupsInt8(data, stride, q, sc, bc, upper, cols, x, xOff, y, yOff, r0, r1);
            case PACKED_INT8 -> groupsPackedInt8(data, stride, q, sc, bc, upper, cols, x, xOff, y, yOff, r0, r1);
            case PACKED_INT3 -> groupsPackedInt3(data, stride, q, sc, bc, upper, cols, x, xOff, y, yOff, r0, r1);
            case PACKED_INT2 -> groupsPackedInt2(data, stride, q, sc, bc, upper, cols, x, xOff, y, yOff, r0, r1);
            default -> {
                if (LANES == 16) groupsInt4Table(data, stride, q, sc, bc, upper, cols, x, xOff, y, yOff, r0, r1);
                else if (LANES == 8) groupsInt4Halves(data, stride, q, sc, bc, upper, cols, x, xOff, y, yOff, r0, r1);
                else groupsPackedInt4(data, stride, q, sc, bc, upper, cols, x, xOff, y, yOff, r0, r1);
            }
        }
    }

    /**
     * The one-token int4 group loop by conversion (codes to float, times the scale) that the table lookups replaced,
     * with the same bits: kept only so that {@code QuantizedKernelsBenchmark} times before against after in one JVM
     * (and still the loop at 128 bits). Group-path int4 matrices only.
     */
    static void matvecByConversion(WeightMatrix w, float[] x, int xOff, float[] y, int yOff, int rowFrom, int rowTo) {
        int half = (rowTo - rowFrom) / 2;
        for (int r = rowFrom; r < rowFrom + half; r++) pairByConversion(w, x, xOff, y, yOff, r, r + half);
        if ((rowTo - rowFrom) % 2 != 0) pairByConversion(w, x, xOff, y, yOff, rowTo - 1, rowTo - 1);
    }

    private static void pairByConversion(WeightMatrix w, float[] x, int xOff, float[] y, int yOff, int r0, int r1) {
        Quantization q = w.quantization();
        int cols = w.cols();
        int sc = q.scaleColumns(cols);
        int upper = cols - cols % LANES;
        groupsPackedInt4(w.data(), w.rowBytes(), q, sc, q.blockCols(), upper, cols, x, xOff, y, yOff, r0, r1);
    }

    /** MXFP4 rows, two far apart at a time as on the group path. */
    private static void matvecMxfp4(WeightMatrix w, float[] x, int xOff, float[] y, int yOff, int rowFrom, int rowTo) {
        int half = (rowTo - rowFrom) / 2;
        for (int r = rowFrom; r < rowFrom + half; r++) mxfp4Rows(w, x, xOff, y, yOff, r, r + half);
        if ((rowTo - rowFrom) % 2 != 0) mxfp4Rows(w, x, xOff, y, yOff, rowTo - 1, rowTo - 1);
    }

    /**
     * MXFP4 rows r0 and r1 (which may be the same row) into y, group by group (see the class comment). Columns are a
     * multiple of 32, so of LANES: there is no scalar tail.
     */
    private static void mxfp4Rows(WeightMatrix w, float[] x, int xOff, float[] y, int yOff, int r0, int r1) {
        MemorySegment data = w.data();
        MemorySegment scales = w.quantization().scales();
        int groups = w.cols() / MX_BLOCK;
        long row0 = r0 * w.rowBytes(), row1 = r1 * w.rowBytes();
        long scaleRow0 = (long) r0 * groups, scaleRow1 = (long) r1 * groups;
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        for (int g = 0; g < groups; g++) {
            float s0 = TensorAccess.e8m0ToFloat(scales.get(ValueLayout.JAVA_BYTE, scaleRow0 + g));
            float s1 = TensorAccess.e8m0ToFloat(scales.get(ValueLayout.JAVA_BYTE, scaleRow1 + g));
            int c = xOff + g * MX_BLOCK;
            long b = (long) g * (MX_BLOCK / 2);
            if (LANES == 16) {
                FloatVector x0 = FloatVector.fromArray(FLOATS, x, c);
                FloatVector x1 = FloatVector.fromArray(FLOATS, x, c + 16);
                IntVector t0 = E2M1.mul(s0).reinterpretAsInts();
                IntVector q0 = mxBytes(data, row0 + b);
                IntVector even0 = q0.and(0xf).selectFrom(t0);
                IntVector odd0 = q0.lanewise(VectorOperators.LSHR, 4).and(0xf).selectFrom(t0);
                a0 = EVEN_ODD_LOW.selectFrom(even0, odd0).reinterpretAsFloats().fma(x0, a0);
                a0 = EVEN_ODD_HIGH.selectFrom(even0, odd0).reinterpretAsFloats().fma(x1, a0);
                IntVector t1 = E2M1.mul(s1).reinterpretAsInts();
                IntVector q1 = mxBytes(data, row1 + b);
                IntVector even1 = q1.and(0xf).selectFrom(t1);
                IntVector odd1 = q1.lanewise(VectorOperators.LSHR, 4).and(0xf).selectFrom(t1);
                a1 = EVEN_ODD_LOW.selectFrom(even1, odd1).reinterpretAsFloats().fma(x0, a1);
                a1 = EVEN_ODD_HIGH.selectFrom(even1, odd1).reinterpretAsFloats().fma(x1, a1);
            } else {
                FloatVector v0 = FloatVector.broadcast(FLOATS, s0);
                FloatVector v1 = FloatVector.broadcast(FLOATS, s1);
                for (int k = 0; k < MX_BLOCK; k += LANES) {
                    FloatVector xv = FloatVector.fromArray(FLOATS, x, c + k);
                    a0 = e2m1(unsignedNibbles(data, row0 + b + k / 2)).mul(v0).fma(xv, a0);
                    a1 = e2m1(unsignedNibbles(data, row1 + b + k / 2)).mul(v1).fma(xv, a1);
                }
            }
        }
        y[yOff + r0] = Simd.sum(a0);
        y[yOff + r1] = Simd.sum(a1);
    }

    /** One MXFP4 row dequantized into {@code dst[dstOffset ..]}, the weights {@link #mxfp4Rows} multiplies. */
    private static void widenMxfp4(WeightMatrix w, int row, float[] dst, int dstOffset) {
        MemorySegment data = w.data();
        MemorySegment scales = w.quantization().scales();
        int groups = w.cols() / MX_BLOCK;
        long rowStart = row * w.rowBytes();
        for (int g = 0; g < groups; g++) {
            float s = TensorAccess.e8m0ToFloat(scales.get(ValueLayout.JAVA_BYTE, (long) row * groups + g));
            int c = dstOffset + g * MX_BLOCK;
            long b = rowStart + (long) g * (MX_BLOCK / 2);
            if (LANES == 16) {
                IntVector t = E2M1.mul(s).reinterpretAsInts();
                IntVector q = mxBytes(data, b);
                IntVector even = q.and(0xf).selectFrom(t);
                IntVector odd = q.lanewise(VectorOperators.LSHR, 4).and(0xf).selectFrom(t);
                EVEN_ODD_LOW.selectFrom(even, odd).reinterpretAsFloats().intoArray(dst, c);
                EVEN_ODD_HIGH.selectFrom(even, odd).reinterpretAsFloats().intoArray(dst, c + 16);
            } else {
                FloatVector v = FloatVector.broadcast(FLOATS, s);
                for (int k = 0; k < MX_BLOCK; k += LANES) e2m1(unsignedNibbles(data, b + k / 2)).mul(v).intoArray(dst, c + k);
            }
        }
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
            y[yOff + r] = Simd.sum(upper == cols ? acc : withTail(acc, q, data, cols, r, x, xOff, upper));
        }
    }

    /** The LANES integer codes of columns [c, c + LANES) of the row at byte {@code row}. */
    private static IntVector codes(Scheme scheme, MemorySegment data, long row, int c) {
        return switch (scheme) {
            case INT8 -> signedBytes(data, row + c);
            case PACKED_INT8 -> offsetBytes(data, row + c);
            case PACKED_INT3 -> triples(data, row, c);
            case PACKED_INT2 -> crumbs(data, row + c / 4);
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
            y[yOff + r] = Simd.sum(upper == cols ? acc : withTail(acc, q, data, cols, r, x, xOff, upper));
        }
    }

    /**
     * Rows r0 and r1 (which may be the same row) over their whole vectors, on the group fast path
     * ({@link #groupPath}), into y. Vectors stay inside this method: one returned from a loop-carrying method is
     * boxed at every iteration, which made an earlier version three times slower.
     */
    private static void groupsInt8(MemorySegment data, long stride, Quantization q, int sc, int bc, int upper, int cols,
                                   float[] x,
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
        y[yOff + r0] = Simd.sum(upper == cols ? a0 : withTail(a0, q, data, cols, r0, x, xOff, upper));
        y[yOff + r1] = Simd.sum(upper == cols ? a1 : withTail(a1, q, data, cols, r1, x, xOff, upper));
    }

    /**
     * Rows r0 and r1 (which may be the same row) over their whole vectors, on the group fast path
     * ({@link #groupPath}), into y. Vectors stay inside this method: one returned from a loop-carrying method is
     * boxed at every iteration, which made an earlier version three times slower.
     */
    private static void groupsPackedInt8(MemorySegment data, long stride, Quantization q, int sc, int bc, int upper, int cols,
                                   float[] x,
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
        y[yOff + r0] = Simd.sum(upper == cols ? a0 : withTail(a0, q, data, cols, r0, x, xOff, upper));
        y[yOff + r1] = Simd.sum(upper == cols ? a1 : withTail(a1, q, data, cols, r1, x, xOff, upper));
    }

    /**
     * Rows r0 and r1 (which may be the same row) over their whole vectors, on the group fast path
     * ({@link #groupPath}), into y. Vectors stay inside this method: one returned from a loop-carrying method is
     * boxed at every iteration, which made an earlier version three times slower.
     */
    private static void groupsPackedInt4(MemorySegment data, long stride, Quantization q, int sc, int bc, int upper, int cols,
                                   float[] x,
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
        y[yOff + r0] = Simd.sum(upper == cols ? a0 : withTail(a0, q, data, cols, r0, x, xOff, upper));
        y[yOff + r1] = Simd.sum(upper == cols ? a1 : withTail(a1, q, data, cols, r1, x, xOff, upper));
    }

    /**
     * {@link #groupsPackedInt4} at 512 bits by table lookup (see the class comment): per group and row one multiply
     * makes the table of the 16 weights a code can stand for, {@code float(c − 8) · scale}, the very product the
     * formula rounds; then 32 columns cost one 16-byte load, two lookups and two interleaving permutes, and a group's
     * last 16 columns (groups of 16, 48, ..) one lookup of the nibbles spread as {@link #unsignedNibbles} spreads them.
     * The FMAs are those of the float32 path, in its order.
     */
    private static void groupsInt4Table(MemorySegment data, long stride, Quantization q, int sc, int bc, int upper, int cols,
                                        float[] x, int xOff, float[] y, int yOff, int r0, int r1) {
        MemorySegment scales = q.scales();
        DType type = q.scaleType();
        long row0 = r0 * stride, row1 = r1 * stride;
        long scaleRow0 = (long) r0 * sc, scaleRow1 = (long) r1 * sc;
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        for (int c = 0; c < upper; ) {
            int g = c / bc;
            IntVector t0 = INT4_VALUES.mul(scale(scales, type, scaleRow0 + g)).reinterpretAsInts();
            IntVector t1 = INT4_VALUES.mul(scale(scales, type, scaleRow1 + g)).reinterpretAsInts();
            int end = Math.min((g + 1) * bc, upper);
            for (; c + 32 <= end; c += 32) {
                FloatVector x0 = FloatVector.fromArray(FLOATS, x, xOff + c);
                FloatVector x1 = FloatVector.fromArray(FLOATS, x, xOff + c + 16);
                IntVector q0 = mxBytes(data, row0 + c / 2);
                IntVector even0 = q0.and(0xf).selectFrom(t0);
                IntVector odd0 = q0.lanewise(VectorOperators.LSHR, 4).and(0xf).selectFrom(t0);
                a0 = EVEN_ODD_LOW.selectFrom(even0, odd0).reinterpretAsFloats().fma(x0, a0);
                a0 = EVEN_ODD_HIGH.selectFrom(even0, odd0).reinterpretAsFloats().fma(x1, a0);
                IntVector q1 = mxBytes(data, row1 + c / 2);
                IntVector even1 = q1.and(0xf).selectFrom(t1);
                IntVector odd1 = q1.lanewise(VectorOperators.LSHR, 4).and(0xf).selectFrom(t1);
                a1 = EVEN_ODD_LOW.selectFrom(even1, odd1).reinterpretAsFloats().fma(x0, a1);
                a1 = EVEN_ODD_HIGH.selectFrom(even1, odd1).reinterpretAsFloats().fma(x1, a1);
            }
            if (c < end) {
                // 16 columns left in the group (the group path's groups are whole vectors: 0 or 16 remain).
                FloatVector xv = FloatVector.fromArray(FLOATS, x, xOff + c);
                a0 = unsignedNibbles(data, row0 + c / 2).selectFrom(t0).reinterpretAsFloats().fma(xv, a0);
                a1 = unsignedNibbles(data, row1 + c / 2).selectFrom(t1).reinterpretAsFloats().fma(xv, a1);
                c += LANES;
            }
        }
        y[yOff + r0] = Simd.sum(upper == cols ? a0 : withTail(a0, q, data, cols, r0, x, xOff, upper));
        y[yOff + r1] = Simd.sum(upper == cols ? a1 : withTail(a1, q, data, cols, r1, x, xOff, upper));
    }

    /**
     * {@link #groupsPackedInt4} at 256 bits by table lookup: the group's 16-entry table in two 8-lane vectors, each
     * vector of nibbles looked up in both by one two-vector permute.
     */
    private static void groupsInt4Halves(MemorySegment data, long stride, Quantization q, int sc, int bc, int upper, int cols,
                                         float[] x, int xOff, float[] y, int yOff, int r0, int r1) {
        MemorySegment scales = q.scales();
        DType type = q.scaleType();
        long row0 = r0 * stride, row1 = r1 * stride;
        long scaleRow0 = (long) r0 * sc, scaleRow1 = (long) r1 * sc;
        FloatVector a0 = FloatVector.zero(FLOATS);
        FloatVector a1 = a0;
        for (int c = 0; c < upper; ) {
            int g = c / bc;
            float s0 = scale(scales, type, scaleRow0 + g);
            float s1 = scale(scales, type, scaleRow1 + g);
            IntVector low0 = INT4_LOW.mul(s0).reinterpretAsInts(), high0 = INT4_HIGH.mul(s0).reinterpretAsInts();
            IntVector low1 = INT4_LOW.mul(s1).reinterpretAsInts(), high1 = INT4_HIGH.mul(s1).reinterpretAsInts();
            for (int end = Math.min((g + 1) * bc, upper); c < end; c += LANES) {
                FloatVector xv = FloatVector.fromArray(FLOATS, x, xOff + c);
                a0 = unsignedNibbles(data, row0 + c / 2).selectFrom(low0, high0).reinterpretAsFloats().fma(xv, a0);
                a1 = unsignedNibbles(data, row1 + c / 2).selectFrom(low1, high1).reinterpretAsFloats().fma(xv, a1);
            }
        }
        y[yOff + r0] = Simd.sum(upper == cols ? a0 : withTail(a0, q, data, cols, r0, x, xOff, upper));
        y[yOff + r1] = Simd.sum(upper == cols ? a1 : withTail(a1, q, data, cols, r1, x, xOff, upper));
    }

    /**
     * Rows r0 and r1 (which may be the same row) over their whole vectors, on the group fast path
     * ({@link #groupPath}), into y, as {@link #groupsPackedInt4} for int3 and int2 codes.
     */
    private static void groupsPackedInt3(MemorySegment data, long stride, Quantization q, int sc, int bc, int upper, int cols,
                                   float[] x, int xOff, float[] y, int yOff, int r0, int r1) {
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
                a0 = ((FloatVector) triples(data, row0, c).convert(VectorOperators.I2F, 0)).mul(s0).fma(xv, a0);
                a1 = ((FloatVector) triples(data, row1, c).convert(VectorOperators.I2F, 0)).mul(s1).fma(xv, a1);
            }
        }
        y[yOff + r0] = Simd.sum(upper == cols ? a0 : withTail(a0, q, data, cols, r0, x, xOff, upper));
        y[yOff + r1] = Simd.sum(upper == cols ? a1 : withTail(a1, q, data, cols, r1, x, xOff, upper));
    }

    /**
     * Rows r0 and r1 (which may be the same row) over their whole vectors, on the group fast path
     * ({@link #groupPath}), into y, as {@link #groupsPackedInt4} for int3 and int2 codes.
     */
    private static void groupsPackedInt2(MemorySegment data, long stride, Quantization q, int sc, int bc, int upper, int cols,
                                   float[] x, int xOff, float[] y, int yOff, int r0, int r1) {
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
                a0 = ((FloatVector) crumbs(data, row0 + c / 4).convert(VectorOperators.I2F, 0)).mul(s0).fma(xv, a0);
                a1 = ((FloatVector) crumbs(data, row1 + c / 4).convert(VectorOperators.I2F, 0)).mul(s1).fma(xv, a1);
            }
        }
        y[yOff + r0] = Simd.sum(upper == cols ? a0 : withTail(a0, q, data, cols, r0, x, xOff, upper));
        y[yOff + r1] = Simd.sum(upper == cols ? a1 : withTail(a1, q, data, cols, r1, x, xOff, upper));
    }

    /**
     * Dequantizes row {@code row}'s weights into {@code dst[dstOffset ..]}, then zeros up to {@code paddedCount}: the
     * packed GEMM's panel, with the very floats the matrix-vector product multiplies.
     */
    static void widen(WeightMatrix w, int row, float[] dst, int dstOffset, int paddedCount) {
        Quantization q = w.quantization();
        if (q.scheme() == Scheme.MXFP4) {
            widenMxfp4(w, row, dst, dstOffset);
            for (int c = w.cols(); c < paddedCount; c++) dst[dstOffset + c] = 0f;
            return;
        }
        MemorySegment data = w.data();
        int cols = w.cols();
        long rowStart = row * w.rowBytes();
        int upper = cols - cols % LANES;
        int bc = q.blockCols();
        int sc = q.scaleColumns(cols);
        int rb = row / q.blockRows();
        Scheme scheme = q.scheme();
        if (groupPath(q) && LANES == 16 && scheme == Scheme.PACKED_INT4) {
            widenInt4Table(data, rowStart, q.scales(), q.scaleType(), (long) row * sc, bc, upper, dst, dstOffset);
            for (int c = upper; c < cols; c++) dst[dstOffset + c] = q.weight(data, cols, row, c);
            for (int c = cols; c < paddedCount; c++) dst[dstOffset + c] = 0f;
            return;
        }
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

    /** One int4 row's whole vectors dequantized by table lookup, the weights {@link #groupsInt4Table} multiplies. */
    private static void widenInt4Table(MemorySegment data, long rowStart, MemorySegment scales, DType type, long scaleRow,
                                       int bc, int upper, float[] dst, int dstOffset) {
        for (int c = 0; c < upper; ) {
            int g = c / bc;
            IntVector t = INT4_VALUES.mul(scale(scales, type, scaleRow + g)).reinterpretAsInts();
            int end = Math.min((g + 1) * bc, upper);
            for (; c + 32 <= end; c += 32) {
                IntVector q = mxBytes(data, rowStart + c / 2);
                IntVector even = q.and(0xf).selectFrom(t);
                IntVector odd = q.lanewise(VectorOperators.LSHR, 4).and(0xf).selectFrom(t);
                EVEN_ODD_LOW.selectFrom(even, odd).reinterpretAsFloats().intoArray(dst, dstOffset + c);
                EVEN_ODD_HIGH.selectFrom(even, odd).reinterpretAsFloats().intoArray(dst, dstOffset + c + 16);
            }
            if (c < end) {
                unsignedNibbles(data, rowStart + c / 2).selectFrom(t).reinterpretAsFloats().intoArray(dst, dstOffset + c);
                c += LANES;
            }
        }
    }

    /** The end of the run of whole vectors from {@code c} inside c's scale block (c itself if there is none). */
    private static int runEnd(int c, int blockCols, int upper) {
        int blockEnd = (c / blockCols + 1) * blockCols;
        int end = Math.min(blockEnd, upper);
        return c + (end - c) / LANES * LANES;
    }

    /** The row's lane sum plus its last {@code cols % LANES} weights times x, in scalar, as MatvecKernel adds them. */
    /**
     * The accumulator of row r plus its last partial vector of columns, zero-padded, as the float kernels add it (the
     * lanes are summed after). Built lane by lane: only shapes whose columns are not a whole number of vectors get
     * here, none of a real checkpoint's.
     */
    private static FloatVector withTail(FloatVector acc, Quantization q, MemorySegment data, int cols, int r, float[] x, int xOff,
                                        int upper) {
        int rest = cols - upper;
        FloatVector w = FloatVector.zero(FLOATS);
        for (int i = 0; i < rest; i++) w = w.withLane(i, q.weight(data, cols, r, upper + i));
        return w.fma(FloatVector.fromArray(FLOATS, x, xOff + upper, FLOATS.indexInRange(0, rest)), acc);
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
    static IntVector signedBytes(MemorySegment m, long offset) {
        if (BYTES != null) {
            return (IntVector) ByteVector.fromMemorySegment(BYTES, m, offset, LE).convertShape(VectorOperators.B2I, INTS, 0);
        }
        // 4 lanes: byte i to the top of lane i, then an arithmetic shift back down sign-extends it.
        return IntVector.broadcast(INTS, m.get(TensorAccess.I32_LE, offset)).lanewise(VectorOperators.LSHL, BYTE_SHIFTS)
                .lanewise(VectorOperators.ASHR, 24);
    }

    /** LANES pack-quantized int8 codes (stored q + 128) from {@code offset}, as signed ints q. */
    static IntVector offsetBytes(MemorySegment m, long offset) {
        // A sign-extended byte u − 256·[u ≥ 128] XOR ~0x7f is u − 128: flipping bit 7 and everything above it.
        return signedBytes(m, offset).lanewise(VectorOperators.XOR, 0xffff_ff80);
    }

    /** LANES pack-quantized int4 codes (stored q + 8, two per byte, low nibble first) from byte {@code offset}. */
    static IntVector nibbles(MemorySegment m, long offset) {
        return unsignedNibbles(m, offset).sub(8);
    }

    /** LANES pack-quantized int2 codes (stored q + 2, four per byte, lowest bits first) from byte {@code offset}. */
    private static IntVector crumbs(MemorySegment m, long offset) {
        int bits;
        if (LANES == 16) bits = m.get(TensorAccess.I32_LE, offset);
        else if (LANES == 8) bits = m.get(I16, offset) & 0xffff;
        else bits = m.get(ValueLayout.JAVA_BYTE, offset) & 0xff;
        return IntVector.broadcast(INTS, bits).lanewise(VectorOperators.LSHR, CRUMB_SHIFTS).and(3).sub(2);
    }

    /**
     * LANES pack-quantized int3 codes (stored q + 4, ten per int32 word) of columns [c, c + LANES) of the row at
     * byte {@code row} (c a multiple of LANES): the two or three words they span, each loaded once and blended into
     * its lanes, then each lane's field shifted down (see the class comment). Words past the last one the columns
     * need are not read, so a row's last vector stays inside the row.
     */
    private static IntVector triples(MemorySegment m, long row, int c) {
        int start = c % TRIPLES;
        int at = start / 2 * LANES;
        long word = row + 4L * (c / TRIPLES);
        int last = (start + LANES - 1) / TRIPLES;
        IntVector words = IntVector.broadcast(INTS, m.get(TensorAccess.I32_LE, word));
        if (last >= 1) {
            IntVector which = IntVector.fromArray(INTS, TRIPLE_WORDS, at);
            words = words.blend(m.get(TensorAccess.I32_LE, word + 4), which.compare(VectorOperators.GE, 1));
            if (last >= 2) words = words.blend(m.get(TensorAccess.I32_LE, word + 8), which.compare(VectorOperators.GE, 2));
        }
        return words.lanewise(VectorOperators.LSHR, IntVector.fromArray(INTS, TRIPLE_SHIFTS, at)).and(7).sub(4);
    }

    /** LANES nibbles (two per byte, low nibble first) from byte {@code offset}, as ints 0..15. */
    static IntVector unsignedNibbles(MemorySegment m, long offset) {
        IntVector words;
        if (LANES == 16) {
            long bits = m.get(I64, offset);
            words = IntVector.broadcast(INTS, (int) bits).blend((int) (bits >>> 32), UPPER_EIGHT);
        } else if (LANES == 8) {
            words = IntVector.broadcast(INTS, m.get(TensorAccess.I32_LE, offset));
        } else {
            words = IntVector.broadcast(INTS, m.get(I16, offset) & 0xffff);
        }
        return words.lanewise(VectorOperators.LSHR, NIBBLE_SHIFTS).and(0xf);
    }

    /** 16 bytes from {@code offset} (one MXFP4 group's codes), widened to 16 int lanes (512 bits only). */
    private static IntVector mxBytes(MemorySegment m, long offset) {
        return (IntVector) ByteVector.fromMemorySegment(MX_BYTES, m, offset, LE).convertShape(VectorOperators.B2I, INTS, 0);
    }

    /**
     * The E2M1 values of LANES codes 0..15, exactly: the magnitude bits (two exponent, one mantissa) at a float's
     * bits 22..24 make the float FP4(code) · 2^−126 (code 1, 0.5, is the subnormal 2^−127; code 0 is zero), so an
     * exact multiply by 2^126 gives the value; the code's sign bit goes to the float's sign.
     */
    private static FloatVector e2m1(IntVector codes) {
        IntVector bits = codes.and(7).lanewise(VectorOperators.LSHL, 22)
                .or(codes.and(8).lanewise(VectorOperators.LSHL, 28));
        return bits.reinterpretAsFloats().mul(0x1p126f);
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
