package io.moeserve.runtime.tensor;

import java.util.Locale;

/**
 * Element types of checkpoint tensors, by their safetensors names: the float types the runtime computes with, and
 * the storage types of quantized checkpoints (FP8 codes, int8 values, packed int32 words, raw bytes), which are only
 * read through a {@link Quantization}.
 */
public enum DType {
    F32(4),
    BF16(2),
    F16(2),
    /** float8_e4m3fn: sign, 4 exponent bits (bias 7), 3 mantissa bits; no infinities, NaN at 0x7f and 0xff. */
    F8_E4M3(1),
    I8(1),
    U8(1),
    I32(4);

    private final int byteSize;

    DType(int byteSize) {
        this.byteSize = byteSize;
    }

    /** Bytes per element. */
    public int byteSize() {
        return byteSize;
    }

    /** Whether this is a float type that kernels read as weights directly (F32, BF16, F16). */
    public boolean isFloat() {
        return this == F32 || this == BF16 || this == F16;
    }

    /** The safetensors spelling ("F32", "BF16", "F8_E4M3", ...). */
    public String safetensorsName() {
        return name();
    }

    /**
     * Parses a safetensors dtype string. Returns null for a dtype that safetensors defines but this runtime
     * does not read (callers turn that into an error naming the file and tensor).
     */
    public static DType fromSafetensors(String name) {
        return switch (name.toUpperCase(Locale.ROOT)) {
            case "F32" -> F32;
            case "BF16" -> BF16;
            case "F16" -> F16;
            case "F8_E4M3" -> F8_E4M3;
            case "I8" -> I8;
            case "U8" -> U8;
            case "I32" -> I32;
            default -> null;
        };
    }
}
