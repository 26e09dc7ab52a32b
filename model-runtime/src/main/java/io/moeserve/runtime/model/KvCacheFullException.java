package io.moeserve.runtime.model;

/** A sequence needs a KV-cache block and the pool has none left (or the sequence reached the context limit). */
public final class KvCacheFullException extends RuntimeException {
    private final int slot;

    public KvCacheFullException(int slot, int length) {
        super("KV cache has no room for " + length + " positions of the sequence in slot " + slot);
        this.slot = slot;
    }

    public int slot() {
        return slot;
    }
}
