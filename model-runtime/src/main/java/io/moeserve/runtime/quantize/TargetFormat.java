package io.moeserve.runtime.quantize;

import java.util.Locale;

/** What {@code moe quantize} turns a group of weights into. */
public enum TargetFormat {
    /** Packed int2 (compressed-tensors pack-quantized, 16 codes per int32): for mixed-precision experts. */
    INT2(2),
    /** Packed int3 (10 codes per int32, two bits of each word unused): for mixed-precision experts. */
    INT3(3),
    INT4(4),
    INT8(8),
    FP8(8),
    /** OCP MXFP4 (gpt-oss's experts): E2M1 codes, one E8M0 scale per 32 columns. */
    MXFP4(4),
    /** Leave the weights as they are. */
    KEEP(0);

    private final int bits;

    TargetFormat(int bits) {
        this.bits = bits;
    }

    public int bits() {
        return bits;
    }

    /** The packed integer format of {@code bits} bits (2, 3, 4 or 8), as mixed-precision experts choose them. */
    public static TargetFormat packedInt(int bits) {
        return switch (bits) {
            case 2 -> INT2;
            case 3 -> INT3;
            case 4 -> INT4;
            case 8 -> INT8;
            default -> throw new IllegalArgumentException("packed integer experts have 2, 3, 4 or 8 bits, not " + bits);
        };
    }

    /** Parses "int2", "int3", "int4", "int8", "fp8", "mxfp4" or "keep". */
    public static TargetFormat parse(String s) {
        try {
            return valueOf(s.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("unknown weight format '" + s + "' (expected int2, int3, int4, int8, fp8, mxfp4 or keep)");
        }
    }
}
