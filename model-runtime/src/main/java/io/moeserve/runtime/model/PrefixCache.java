package io.moeserve.runtime.model;

import java.util.Arrays;

/**
 * The KV cache's prefix caching: which full blocks hold the keys and values of which token prefix, how many
 * sequences use each block, and the least recently used order of the cached blocks nobody uses.
 *
 * <p>Design. As in vLLM, a full block is named by a hash chain: its hash covers its parent's hash (the block before
 * it in the sequence, or a seed for the first) and its own tokens, so equal hashes mean equal prefixes up to and
 * including the block. Sequences that share a prefix point their block tables at the same blocks, read-only: a block
 * is registered only once every position in it is computed and its sequence never writes it again, and a sequence
 * takes a cached block only for positions it has not computed, before the last position of its prompt. Each block
 * stores its hash, its parent's hash and its tokens, and a lookup compares all three, so two prefixes can only be
 * confused by a collision of the 64-bit parent hash with equal tokens besides.
 *
 * <p>A block's reference count is the number of block tables holding it. A cached block that drops to no references
 * stays cached, at the tail of an LRU list, so a later request with the same prefix can take it back; a block that is
 * not cached goes back to the free list. When the free list is empty the pool takes the LRU list's head, dropping it
 * from the hash table. Blocks are released from a sequence's last to its first, so a prefix's tail is evicted before
 * its head, which every longer prefix needs.
 *
 * <p>The hash table is open addressing with linear probing over block ids (the key is the block's stored hash) and
 * deletes by shifting back, so nothing is allocated after construction. Not thread-safe: the loop's thread only.
 */
final class PrefixCache {
    private static final int NONE = -1;

    private final int blockSize;
    private final int[] refCounts;
    private final boolean[] cached;
    private final long[] hashes;
    private final long[] parents;
    private final int[] tokens;
    private final int[] table;
    private final int mask;
    private final int[] lruPrev;
    private final int[] lruNext;
    private int lruHead = NONE;
    private int lruTail = NONE;
    private int evictable;
    private int cachedCount;
    private long queriedTokens;
    private long hitTokens;

    PrefixCache(int numBlocks, int blockSize) {
        this.blockSize = blockSize;
        this.refCounts = new int[numBlocks];
        this.cached = new boolean[numBlocks];
        this.hashes = new long[numBlocks];
        this.parents = new long[numBlocks];
        this.tokens = new int[numBlocks * blockSize];
        int capacity = Integer.highestOneBit(Math.max(2, numBlocks) * 2 - 1) << 1;
        this.table = new int[capacity];
        this.mask = capacity - 1;
        this.lruPrev = new int[numBlocks];
        this.lruNext = new int[numBlocks];
        clear();
    }

    void clear() {
        Arrays.fill(refCounts, 0);
        Arrays.fill(cached, false);
        Arrays.fill(table, NONE);
        lruHead = NONE;
        lruTail = NONE;
        evictable = 0;
        cachedCount = 0;
    }

    /** A block was taken from the free list or the LRU list for one sequence. */
    void taken(int block) {
        refCounts[block] = 1;
    }

    /** One more sequence uses a cached block; it leaves the LRU list if it was there. */
    void ref(int block) {
        if (refCounts[block]++ == 0) unlink(block);
    }

    /**
     * A sequence no longer uses the block; true when it is free (no references and not cached), false when
     * others still use it or it waits, cached, in the LRU list.
     */
    boolean unref(int block) {
        if (refCounts[block] <= 0) throw new IllegalStateException("block " + block + " released more often than taken");
        if (--refCounts[block] > 0) return false;
        if (!cached[block]) return true;
        append(block);
        return false;
    }

    int refCount(int block) {
        return refCounts[block];
    }

    boolean isCached(int block) {
        return cached[block];
    }

    /** Cached blocks nobody uses: the pool may take them. */
    int evictable() {
        return evictable;
    }

    /** Blocks holding a cached prefix, used or not. */
    int cachedBlocks() {
        return cachedCount;
    }

    /** Takes the least recently used unreferenced cached block out of the cache; NONE when there is none. */
    int evict() {
        int block = lruHead;
        if (block == NONE) return NONE;
        unlink(block);
        remove(block);
        return block;
    }

    /** The cached block whose hash, parent hash and tokens ({@code blockSize} from {@code from}) are these, or -1. */
    int find(long hash, long parent, int[] blockTokens, int from) {
        for (int i = home(hash); table[i] != NONE; i = (i + 1) & mask) {
            int block = table[i];
            if (hashes[block] == hash && parents[block] == parent
                    && Arrays.equals(tokens, block * blockSize, (block + 1) * blockSize, blockTokens, from, from + blockSize)) {
                return block;
            }
        }
        return NONE;
    }

    /**
     * Caches a fully computed block in use by one sequence under its hash; false when the block is already cached or
     * another block holds that hash (two sequences computed the same prefix at once: the first one's stays).
     */
    boolean insert(int block, long hash, long parent, int[] blockTokens, int from) {
        if (cached[block]) return false;
        int i = home(hash);
        for (; table[i] != NONE; i = (i + 1) & mask) {
            if (hashes[table[i]] == hash) return false;
        }
        table[i] = block;
        cached[block] = true;
        hashes[block] = hash;
        parents[block] = parent;
        System.arraycopy(blockTokens, from, tokens, block * blockSize, blockSize);
        cachedCount++;
        return true;
    }

    void countQuery(int promptTokens) {
        queriedTokens += promptTokens;
    }

    void countHit(int promptTokens) {
        hitTokens += promptTokens;
    }

    long queriedTokens() {
        return queriedTokens;
    }

    long hitTokens() {
        return hitTokens;
    }

    private int home(long hash) {
        return (int) (hash ^ (hash >>> 32)) & mask;
    }

    /** Drops a block from the hash table, shifting back the entries after it that would no longer be found. */
    private void remove(int block) {
        int i = home(hashes[block]);
        while (table[i] != block) i = (i + 1) & mask;
        int hole = i;
        for (int j = (hole + 1) & mask; table[j] != NONE; j = (j + 1) & mask) {
            int want = home(hashes[table[j]]);
            // The entry at j may move into the hole unless its home lies cyclically in (hole, j].
            boolean stays = hole <= j ? hole < want && want <= j : hole < want || want <= j;
            if (!stays) {
                table[hole] = table[j];
                hole = j;
            }
        }
        table[hole] = NONE;
        cached[block] = false;
        cachedCount--;
    }

    private void append(int block) {
        lruPrev[block] = lruTail;
        lruNext[block] = NONE;
        if (lruTail == NONE) lruHead = block;
        else lruNext[lruTail] = block;
        lruTail = block;
        evictable++;
    }

    private void unlink(int block) {
        int prev = lruPrev[block];
        int next = lruNext[block];
        if (prev == NONE) lruHead = next;
        else lruNext[prev] = next;
        if (next == NONE) lruTail = prev;
        else lruPrev[next] = prev;
        evictable--;
    }
}
