package io.moeserve.runtime.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** Scalar element access and dtype conversions (the slow, obviously-correct path; kernels have fast ones). */
public final class TensorAccess {
    public static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private TensorAccess() {}

    public static float getFloat(MemorySegment data, DType dtype, long index) {
        return switch (dtype) {
            case F32 -> data.get(F32_LE, index * 4);
            case BF16 -> bf16ToFloat(data.get(I16_LE, index * 2));
            case F16 -> Float.float16ToFloat(data.get(I16_LE, index * 2));
        };
    }

    public static void setFloat(MemorySegment data, DType dtype, long index, float value) {
        switch (dtype) {
            case F32 -> data.set(F32_LE, index * 4, value);
            case BF16 -> data.set(I16_LE, index * 2, floatToBf16(value));
            case F16 -> data.set(I16_LE, index * 2, Float.floatToFloat16(value));
        }
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
