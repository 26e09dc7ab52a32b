package io.moeserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The prefix cache's bookkeeping against plain collections: the hash table, the LRU order, the reference counts. */
class PrefixCacheTest {
    private static final int BS = 4;

    private static int[] tokens(long hash) {
        return new int[] {(int) hash, 1, 2, 3};
    }

    @Test
    void theHashTableAndLruAgreeWithAMapAndALinkedSetUnderRandomOperations() {
        int blocks = 24;
        PrefixCache cache = new PrefixCache(blocks, BS);
        Map<Long, Integer> byHash = new HashMap<>();
        LinkedHashSet<Integer> lru = new LinkedHashSet<>();
        int[] refs = new int[blocks];
        List<Integer> free = new ArrayList<>();
        for (int b = 0; b < blocks; b++) free.add(b);
        Random random = new Random(7);
        for (int op = 0; op < 20_000; op++) {
            // Few distinct hashes, many sharing a home slot, so probing and backward-shift deletion are exercised.
            long hash = random.nextInt(40) * 64L + (random.nextBoolean() ? 0 : 1);
            switch (random.nextInt(4)) {
                case 0 -> {                                    // take a block and cache it under hash
                    int block;
                    if (!free.isEmpty()) {
                        block = free.removeLast();
                    } else if (!lru.isEmpty()) {
                        block = cache.evict();
                        int expected = lru.removeFirst();
                        assertEquals(expected, block, "the least recently used block goes first");
                        byHash.values().remove(block);
                    } else {
                        continue;
                    }
                    cache.taken(block);
                    refs[block] = 1;
                    boolean inserted = cache.insert(block, hash, hash + 1, tokens(hash), 0);
                    assertEquals(!byHash.containsKey(hash), inserted);
                    if (inserted) byHash.put(hash, block);
                }
                case 1 -> {                                    // look a hash up and share its block
                    int block = cache.find(hash, hash + 1, tokens(hash), 0);
                    assertEquals(byHash.getOrDefault(hash, -1), block);
                    assertEquals(-1, cache.find(hash, hash + 2, tokens(hash), 0), "the parent hash must match too");
                    assertEquals(-1, cache.find(hash, hash + 1, tokens(hash + 1), 0), "the tokens must match too");
                    if (block >= 0) {
                        cache.ref(block);
                        if (refs[block]++ == 0) lru.remove(block);
                    }
                }
                default -> {                                   // release a held block
                    int block = random.nextInt(blocks);
                    if (refs[block] == 0) {
                        assertThrows(IllegalStateException.class, () -> cache.unref(block), "a count never goes below zero");
                        continue;
                    }
                    boolean freed = cache.unref(block);
                    if (--refs[block] == 0) {
                        if (byHash.containsValue(block)) lru.add(block);
                        else free.add(block);
                    }
                    assertEquals(refs[block] == 0 && !byHash.containsValue(block), freed);
                }
            }
            assertEquals(lru.size(), cache.evictable());
            assertEquals(byHash.size(), cache.cachedBlocks());
        }
        for (var e : byHash.entrySet()) assertEquals(e.getValue(), cache.find(e.getKey(), e.getKey() + 1, tokens(e.getKey()), 0));
    }

    @Test
    void theKvCacheSharesCachedBlocksAndTakesThemBackOnlyWhenNobodyHoldsThem() {
        KvCache c = new KvCache(1, 2, 2, BS, 4, 3, 32);
        c.enablePrefixCaching();
        int[] t = {9, 8, 7, 6};
        int a = c.allocateSequence();
        assertTrue(c.reserve(a, 6));
        c.setLength(a, 6);
        assertTrue(c.register(a, 0, 42, 1, t, 0));
        assertThrows(IllegalStateException.class, () -> c.register(a, 1, 43, 42, t, 0), "block 1 is not full");
        int block = c.cachedBlock(42, 1, t, 0);
        assertEquals(c.blockOf(a, 0), block);
        int b = c.allocateSequence();
        assertTrue(c.reserve(b, 8), "blocks reserved before sharing are given back by share");
        c.share(b, 0, block);
        assertEquals(4, c.length(b));
        assertEquals(2, c.blockReferences(block));
        assertEquals(2, c.freeBlocks());
        assertThrows(IllegalStateException.class, () -> c.truncate(b, 2), "no rewinding into a shared block");
        c.release(a);
        assertEquals(1, c.blockReferences(block));
        assertEquals(3, c.freeBlocks());
        c.release(b);
        assertEquals(4, c.freeBlocks(), "the cached block is free to evict");
        assertEquals(1, c.cachedBlocks());
        int d = c.allocateSequence();
        assertTrue(c.reserve(d, 16), "the pool evicts the cached block when the free list runs out");
        assertEquals(0, c.cachedBlocks());
        assertEquals(-1, c.cachedBlock(42, 1, t, 0));
        assertFalse(c.reserve(d, 17));
    }
}
