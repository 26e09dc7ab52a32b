package io.moeserve.runtime.quantize;

import java.util.Locale;

/** What {@code moe quantize} turns a group of weights into. */
public enum TargetFormat {
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

    /** Parses "int4", "int8", "fp8", "mxfp4" or "keep". */
    public static TargetFormat parse(String s) {
        try {
            return valueOf(s.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("unknown weight format '" + s + "' (expected int4, int8, fp8, mxfp4 or keep)");
        }
    }
}
