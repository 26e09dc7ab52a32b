package io.moeserve.runtime.model;

import java.util.Locale;

/**
 * How the KV cache stores keys and values. F32 is exact: attention reads back the float32 the projections wrote.
 * BF16 keeps the top half of each float32, rounded to nearest even as torch's cast does, and halves the cache's
 * memory (twice the sequences or context for the same budget); attention widens it back exactly in registers.
 */
public enum KvCacheDtype {
    F32(4),
    BF16(2);

    private final int bytes;

    KvCacheDtype(int bytes) {
        this.bytes = bytes;
    }

    /** Bytes one key or value element takes. */
    public int bytes() {
        return bytes;
    }

    /** {@code f32} or {@code bf16}, in any case. */
    public static KvCacheDtype parse(String text) {
        for (KvCacheDtype d : values()) {
            if (d.name().equalsIgnoreCase(text.trim())) return d;
        }
        throw new IllegalArgumentException("KV cache dtype '" + text + "' is not one of f32, bf16");
    }

    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
