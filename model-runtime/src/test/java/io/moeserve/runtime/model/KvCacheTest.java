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
}
