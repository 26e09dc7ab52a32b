package io.moeserve.runtime.tensor;

import java.util.Locale;

/** Element types of checkpoint tensors that the runtime computes with, by their safetensors names. */
public enum DType {
    F32(4),
    BF16(2),
    F16(2);

    private final int byteSize;

    DType(int byteSize) {
        this.byteSize = byteSize;
    }

    /** Bytes per element. */
    public int byteSize() {
        return byteSize;
    }

    /** The safetensors spelling ("F32", "BF16", "F16"). */
    public String safetensorsName() {
        return name();
    }

    /**
     * Parses a safetensors dtype string. Returns null for a dtype that safetensors defines but this runtime
     * does not compute with (callers turn that into an error naming the file and tensor).
     */
    public static DType fromSafetensors(String name) {
        return switch (name.toUpperCase(Locale.ROOT)) {
            case "F32" -> F32;
            case "BF16" -> BF16;
            case "F16" -> F16;
            default -> null;
        };
    }
}
