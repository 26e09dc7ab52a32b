package io.moeserve.runtime.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** Scalar element access and dtype conversions (the slow, obviously-correct path; kernels have fast ones). */
public final class TensorAccess {
    public static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private TensorAccess() {}

    public static final ValueLayout.OfInt I32_LE = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Element {@code index} as a float: the value of a float or FP8 element, the number an integer element holds. */
    public static float getFloat(MemorySegment data, DType dtype, long index) {
        return switch (dtype) {
            case F32 -> data.get(F32_LE, index * 4);
            case BF16 -> bf16ToFloat(data.get(I16_LE, index * 2));
            case F16 -> Float.float16ToFloat(data.get(I16_LE, index * 2));
            case F8_E4M3 -> e4m3ToFloat(data.get(ValueLayout.JAVA_BYTE, index));
            case I8 -> data.get(ValueLayout.JAVA_BYTE, index);
            case U8 -> data.get(ValueLayout.JAVA_BYTE, index) & 0xff;
            case I32 -> data.get(I32_LE, index * 4);
        };
    }

    /** Stores {@code value} rounded to a float dtype (F32, BF16, F16). */
    public static void setFloat(MemorySegment data, DType dtype, long index, float value) {
        switch (dtype) {
            case F32 -> data.set(F32_LE, index * 4, value);
            case BF16 -> data.set(I16_LE, index * 2, floatToBf16(value));
            case F16 -> data.set(I16_LE, index * 2, Float.floatToFloat16(value));
            default -> throw new IllegalArgumentException("cannot store a float as " + dtype);
        }
    }

    /**
     * The value of a float8_e4m3fn byte (low 8 bits of {@code bits}): (−1)^s · (1 + m/8) · 2^(e−7) for exponent
     * e ≥ 1, (−1)^s · m/8 · 2^−6 for e = 0, NaN for 0x7f and 0xff; there are no infinities (PyTorch's
     * Float8_e4m3fn). The magnitude bits shifted into a float's exponent and mantissa, times 2^120, rebias the
     * exponent exactly and turn subnormals into normals; the kernels decode the same way, lane by lane.
     */
    public static float e4m3ToFloat(int bits) {
        int magnitude = bits & 0x7f;
        if (magnitude == 0x7f) return Float.NaN;
        float v = Float.intBitsToFloat(magnitude << 20) * 0x1p120f;
        return (bits & 0x80) != 0 ? -v : v;
    }

    /**
     * The float8_e4m3fn byte nearest {@code f}, ties to even, saturating at ±448 (as torch's
     * {@code tensor.to(torch.float8_e4m3fn)} after the clamp quantizers apply); NaN becomes 0x7f.
     */
    public static int floatToE4m3(float f) {
        if (Float.isNaN(f)) return 0x7f;
        int sign = f < 0 || (f == 0 && 1 / f < 0) ? 0x80 : 0;
        float a = Math.min(Math.abs(f), 448f);
        // Candidates are monotone in their bits: binary search the largest code whose value is <= a.
        int lo = 0, hi = 0x7e;
        while (lo < hi) {
            int mid = (lo + hi + 1) >>> 1;
            if (e4m3ToFloat(mid) <= a) lo = mid;
            else hi = mid - 1;
        }
        if (lo == 0x7e) return sign | lo;
        float below = e4m3ToFloat(lo), above = e4m3ToFloat(lo + 1);
        float dBelow = a - below, dAbove = above - a;
        int code = dBelow < dAbove ? lo : dAbove < dBelow ? lo + 1 : ((lo & 1) == 0 ? lo : lo + 1);
        return sign | code;
    }

    /** FP4 E2M1 values by code (sign bit 3, two exponent bits, one mantissa bit): the OCP MX table. */
    private static final float[] E2M1 = {0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f, -0f, -0.5f, -1f, -1.5f, -2f, -3f, -4f, -6f};

    /** E8M0 scales by byte: 2^(e − 127), exact (2^−127 is a float32 subnormal), NaN for 0xff. */
    private static final float[] E8M0 = new float[256];

    static {
        for (int e = 0; e < 255; e++) E8M0[e] = Math.scalb(1f, e - 127);
        E8M0[255] = Float.NaN;
    }

    /** The value of an FP4 E2M1 code (low 4 bits of {@code code}): 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives. */
    public static float e2m1ToFloat(int code) {
        return E2M1[code & 0xf];
    }

    /**
     * The multiplier an E8M0 scale byte (low 8 bits of {@code bits}) stands for: 2^(e − 127), from 2^−127 (a float32
     * subnormal, still exact) to 2^127; 0xff is NaN, as the OCP MX specification defines it (the reference
     * dequantizers turn it into 2^128, infinity; a NaN says louder that the checkpoint is broken).
     */
    public static float e8m0ToFloat(int bits) {
        return E8M0[bits & 0xff];
    }

    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /** Round-to-nearest-even, as torch does when casting float32 to bfloat16; NaN stays NaN. */
    public static short floatToBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) return (short) ((bits >>> 16) | 0x0040);
        int rounding = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }
}
