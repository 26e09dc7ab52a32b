package io.moeserve.runtime.kernel;

import static io.moeserve.runtime.kernel.Simd.FLOATS;
import static io.moeserve.runtime.kernel.Simd.HALVES;
import static io.moeserve.runtime.kernel.Simd.INTS;
import static io.moeserve.runtime.kernel.Simd.LANES;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.TensorAccess;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Loads weights straight from their (little-endian, usually memory-mapped) bytes as float vectors, widening 16-bit
 * dtypes in registers, plus whole-row widening into float scratch for the GEMM's packed panels.
 *
 * <p>BF16 is the top half of a float32: sign-extend shorts to ints, shift left 16, reinterpret. F16 has no lane
 * conversion in the JDK 25 incubator (S2F converts the short's value, not its bits), so it is widened by bit
 * arithmetic that is exact for every input: {@code (bits & 0x7fff) << 13}, read as a float, times 2^112 rebias the
 * exponent from 15 to 127 and turn half subnormals into float normals exactly; inputs with an all-ones exponent
 * (infinity, NaN) instead get the float exponent 255 OR-ed in; the sign comes from the sign-extended int. Each load
 * is one small method so that C2 inlines it into the caller's loop (the vectors then stay in registers).
 */
final class WeightVectors {

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    private WeightVectors() {}

    /** LANES float32 weights from {@code byteOffset}. */
    static FloatVector f32(MemorySegment m, long byteOffset) {
        return FloatVector.fromMemorySegment(FLOATS, m, byteOffset, LE);
    }

    /** LANES bfloat16 weights from {@code byteOffset}, widened exactly. */
    static FloatVector bf16(MemorySegment m, long byteOffset) {
        return halves(m, byteOffset).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    /** LANES float16 weights from {@code byteOffset}, widened exactly (NaN stays NaN, subnormals kept). */
    static FloatVector f16(MemorySegment m, long byteOffset) {
        return f16(halves(m, byteOffset));
    }

    /**
     * The {@code count} (fewer than LANES) weights from {@code byteOffset}, widened, and zeros in the other lanes:
     * a row's last partial vector, zero-padded as the packed GEMM pads it. Reads nothing past the weights.
     */
    static FloatVector tail(MemorySegment m, DType dtype, long byteOffset, int count) {
        return switch (dtype) {
            case F32 -> FloatVector.fromMemorySegment(FLOATS, m, byteOffset, LE, FLOATS.indexInRange(0, count));
            case BF16 -> halves(m, byteOffset, count).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            case F16 -> f16(halves(m, byteOffset, count));
            default -> throw new IllegalArgumentException(dtype + " weights are not widened here");
        };
    }

    private static FloatVector f16(IntVector h) {
        IntVector magnitude = h.and(0x7fff);
        IntVector bits = magnitude.lanewise(VectorOperators.LSHL, 13).reinterpretAsFloats().mul(0x1p112f)
                .reinterpretAsInts();
        bits = bits.lanewise(VectorOperators.OR, 0x7f80_0000, magnitude.compare(VectorOperators.GE, 0x7c00));
        return bits.or(h.and(0x8000_0000)).reinterpretAsFloats();
    }

    /** The first {@code count} 16-bit values as sign-extended ints, zeros after them. */
    private static IntVector halves(MemorySegment m, long byteOffset, int count) {
        return (IntVector) ShortVector.fromMemorySegment(HALVES, m, byteOffset, LE, HALVES.indexInRange(0, count))
                .convertShape(VectorOperators.S2I, INTS, 0);
    }

    /** LANES 16-bit values as sign-extended ints (bit 31 is the sign of both BF16 and F16). */
    private static IntVector halves(MemorySegment m, long byteOffset) {
        return (IntVector) ShortVector.fromMemorySegment(HALVES, m, byteOffset, LE)
                .convertShape(VectorOperators.S2I, INTS, 0);
    }

    /**
     * Widens {@code count} weights starting at element {@code element} into {@code dst[dstOffset ..]}, then writes
     * zeros up to {@code paddedCount} (the GEMM reads whole vectors, and the zeros keep the padding harmless).
     */
    static void widen(MemorySegment m, DType dtype, long element, int count, float[] dst, int dstOffset,
                      int paddedCount) {
        // One loop per dtype: a loop holding all three conversions outgrows C2's inlining budget.
        switch (dtype) {
            case F32 -> widenF32(m, element * 4, count, dst, dstOffset);
            case BF16 -> widenBf16(m, element * 2, count, dst, dstOffset);
            case F16 -> widenF16(m, element * 2, count, dst, dstOffset);
            default -> throw new IllegalArgumentException(dtype + " weights without scales");
        }
        for (int i = count; i < paddedCount; i++) dst[dstOffset + i] = 0f;
    }

    private static void widenF32(MemorySegment m, long byteOffset, int count, float[] dst, int dstOffset) {
        int upper = count - count % LANES;
        int i = 0;
        for (; i < upper; i += LANES) f32(m, byteOffset + 4L * i).intoArray(dst, dstOffset + i);
        for (; i < count; i++) dst[dstOffset + i] = m.get(TensorAccess.F32_LE, byteOffset + 4L * i);
    }

    private static void widenBf16(MemorySegment m, long byteOffset, int count, float[] dst, int dstOffset) {
        int upper = count - count % LANES;
        int i = 0;
        for (; i < upper; i += LANES) bf16(m, byteOffset + 2L * i).intoArray(dst, dstOffset + i);
        for (; i < count; i++) dst[dstOffset + i] = TensorAccess.bf16ToFloat(m.get(TensorAccess.I16_LE, byteOffset + 2L * i));
    }

    private static void widenF16(MemorySegment m, long byteOffset, int count, float[] dst, int dstOffset) {
        int upper = count - count % LANES;
        int i = 0;
        for (; i < upper; i += LANES) f16(m, byteOffset + 2L * i).intoArray(dst, dstOffset + i);
        for (; i < count; i++) dst[dstOffset + i] = Float.float16ToFloat(m.get(TensorAccess.I16_LE, byteOffset + 2L * i));
    }
}
