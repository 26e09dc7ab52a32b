package io.moeserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class KvCacheTest {
    @Test
    void blocksAreTakenAsSequencesGrowAndReturnedWhenTheyEnd() {
        KvCache c = new KvCache(2, 8, 8, 4, 5, 3, 64);
        int a = c.allocateSequence();
        int b = c.allocateSequence();
        assertNotEquals(a, b);
        assertTrue(c.reserve(a, 9));     // 3 blocks
        assertEquals(2, c.freeBlocks());
        assertEquals(3, c.blockCount(a));
        assertEquals(3, c.blocksFor(9));
        assertEquals(2, c.blocksFor(8));
        assertTrue(c.reserve(a, 12));    // still 3
        assertEquals(2, c.freeBlocks());
        assertTrue(c.reserve(b, 8));     // 2 blocks
        assertEquals(0, c.freeBlocks());
        assertFalse(c.reserve(b, 9), "the pool is empty: refuse, take nothing");
        assertEquals(0, c.freeBlocks());
        c.release(a);
        assertEquals(3, c.freeBlocks());
        assertTrue(c.reserve(b, 20));
        assertEquals(0, c.freeBlocks());
    }

    @Test
    void positionsMapIntoDistinctRowsOfTheirOwnBlocks() {
        KvCache c = new KvCache(1, 2, 2, 4, 4, 2, 16);
        int a = c.allocateSequence();
        int b = c.allocateSequence();
        c.reserve(a, 8);
        c.reserve(b, 8);
        java.util.Set<Integer> rows = new java.util.HashSet<>();
        for (int p = 0; p < 8; p++) {
            rows.add(c.keyOffset(a, p));
            rows.add(c.keyOffset(b, p));
        }
        assertEquals(16, rows.size());
    }

    @Test
    void aSequenceCannotOutgrowTheContextLimitAndSlotsRunOut() {
        KvCache c = new KvCache(1, 2, 2, 4, 100, 1, 16);
        int a = c.allocateSequence();
        assertFalse(c.reserve(a, 17));
        assertEquals(-1, c.allocateSequence());
        c.release(a);
        assertThrows(IllegalArgumentException.class, () -> c.release(a));
        assertEquals(0, c.activeSequences());
    }

    @Test
    void bf16KeepsHalfTheBytesAndRoundsToNearestEvenAsTorchCasts() {
        KvCache f32 = new KvCache(2, 8, 4, 4, 5, 3, 64);
        KvCache bf16 = new KvCache(2, 8, 4, 4, 5, 3, 64, KvCacheDtype.BF16);
        assertEquals(4L * 2 * 5 * 4 * 12, f32.bytes());
        assertEquals(f32.bytes() / 2, bf16.bytes());
        assertEquals(null, bf16.keys(1), "a BF16 cache has no float32 arrays to write into by mistake");
        int slot = bf16.allocateSequence();
        assertTrue(bf16.reserve(slot, 2));
        int f32Slot = f32.allocateSequence();
        assertTrue(f32.reserve(f32Slot, 2));
        // torch.tensor(x).bfloat16().float(): a tie goes to the even half (1 + 2^-8 -> 1, 1 + 3·2^-8 -> 1 + 2^-6), just
        // past a tie goes up, NaN stays NaN, infinities and the sign are kept.
        float[] keys = {1f + 0x1p-8f, 1f + 3 * 0x1p-8f, 1f + 0x1p-8f + 0x1p-16f, Float.NaN, Float.NEGATIVE_INFINITY, -2.5f, 1e-40f, 3.14159f};
        float[] expected = {1f, 1f + 0x1p-6f, 1f + 0x1p-7f, Float.NaN, Float.NEGATIVE_INFINITY, -2.5f, Float.intBitsToFloat(0x0001_0000),
            3.140625f};
        bf16.writeKeys(1, keys, 0, bf16.keyOffset(slot, 1), keys.length);
        f32.writeKeys(1, keys, 0, f32.keyOffset(f32Slot, 1), keys.length);
        bf16.writeValues(0, keys, 2, bf16.valueOffset(slot, 0), 4);
        for (int i = 0; i < keys.length; i++) {
            assertEquals(expected[i], bf16.key(1, bf16.keyOffset(slot, 1) + i), "key " + i);
            assertEquals(keys[i], f32.key(1, f32.keyOffset(f32Slot, 1) + i), "an F32 cache keeps key " + i + " exactly");
        }
        for (int i = 0; i < 4; i++) assertEquals(expected[2 + i], bf16.value(0, bf16.valueOffset(slot, 0) + i), "value " + i);
    }
}
