package io.moeserve.runtime.model;

import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.tensor.TensorAccess;
import java.util.Arrays;

/**
 * Keys and values of every sequence in flight, in fixed-size blocks taken from one pool.
 *
 * <p>Paged like vLLM's cache: a sequence owns a table of block ids, one block per {@code blockSize} positions, so
 * memory is taken as sequences grow and returned at once when they end, and the pool's size is the memory budget
 * that admission control works against. Storage is one float array per layer for keys and one for values,
 * indexed by (block · blockSize + offset) · width. Everything is allocated up front; growing a sequence by a token
 * pops at most one int from the free list.
 *
 * <p>The elements are float32 ({@link KvCacheDtype#F32}, exact) or bfloat16 ({@link KvCacheDtype#BF16}, half the
 * memory): then the arrays are shorts holding each float's top half, rounded to nearest even when the attention
 * layers write them ({@link #writeKeys}), and {@link AttentionCore} widens them as it reads, which is exact. Block
 * accounting is in positions either way; only the bytes a position takes differ ({@link #bytesPerToken}), so the
 * same memory budget gives BF16 twice the blocks.
 *
 * <p>With prefix caching on ({@link #enablePrefixCaching}), full blocks are shared read-only between sequences
 * with the same token prefix and outlive them, unreferenced, until the pool needs them ({@link PrefixCache} says
 * how): a block then goes back to the pool only when no sequence holds it and it is not cached, the free list is
 * taken first, and when it is empty the least recently used cached block nobody holds is evicted. The generation
 * loop decides what to share and register ({@link #cachedBlock}, {@link #share}, {@link #register}); everything
 * else works as without it.
 */
public final class KvCache {
    private final int numLayers;
    private final int blockSize;
    private final int numBlocks;
    private final int keyWidth;
    private final int valueWidth;
    private final int maxSequences;
    private final int maxBlocksPerSequence;
    private final KvCacheDtype dtype;
    /** Float32 keys and values per layer; null with BF16. */
    private final float[][] keys;
    private final float[][] values;
    /** Bfloat16 keys and values per layer (a float's top 16 bits); null with F32. */
    private final short[][] keyHalves;
    private final short[][] valueHalves;
    private final int[][] blockTables;
    private final int[] blockCounts;
    private final int[] lengths;
    private final boolean[] inUse;
    private final int[] freeBlocks;
    private int freeBlockCount;
    /** Null while prefix caching is off. */
    private PrefixCache prefix;

    /**
     * @param maxContext longest sequence (prompt + generated) any slot may hold
     */
    public KvCache(int numLayers, int keyWidth, int valueWidth, int blockSize, int numBlocks, int maxSequences, int maxContext) {
        this(numLayers, keyWidth, valueWidth, blockSize, numBlocks, maxSequences, maxContext, KvCacheDtype.F32);
    }

    /**
     * @param maxContext longest sequence (prompt + generated) any slot may hold
     * @param dtype      how keys and values are stored
     */
    public KvCache(int numLayers, int keyWidth, int valueWidth, int blockSize, int numBlocks, int maxSequences, int maxContext,
                   KvCacheDtype dtype) {
        if (blockSize <= 0 || numBlocks <= 0 || maxSequences <= 0 || maxContext <= 0) {
            throw new IllegalArgumentException("KV cache sizes must be positive");
        }
        if ((long) numBlocks * blockSize * Math.max(keyWidth, valueWidth) > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException("KV cache of " + numBlocks + " blocks is too large for one array per layer");
        }
        this.numLayers = numLayers;
        this.blockSize = blockSize;
        this.numBlocks = numBlocks;
        this.keyWidth = keyWidth;
        this.valueWidth = valueWidth;
        this.maxSequences = maxSequences;
        this.maxBlocksPerSequence = (maxContext + blockSize - 1) / blockSize;
        this.dtype = dtype;
        boolean halves = dtype == KvCacheDtype.BF16;
        this.keys = halves ? null : new float[numLayers][numBlocks * blockSize * keyWidth];
        this.values = halves ? null : new float[numLayers][numBlocks * blockSize * valueWidth];
        this.keyHalves = halves ? new short[numLayers][numBlocks * blockSize * keyWidth] : null;
        this.valueHalves = halves ? new short[numLayers][numBlocks * blockSize * valueWidth] : null;
        this.blockTables = new int[maxSequences][maxBlocksPerSequence];
        this.blockCounts = new int[maxSequences];
        this.lengths = new int[maxSequences];
        this.inUse = new boolean[maxSequences];
        this.freeBlocks = new int[numBlocks];
        for (int i = 0; i < numBlocks; i++) freeBlocks[i] = numBlocks - 1 - i;
        this.freeBlockCount = numBlocks;
    }

    /** A cache sized for a model: blocks enough for {@code budgetTokens} positions in total. */
    public static KvCache forModel(ModelConfig config, int budgetTokens, int maxSequences, int maxContext, KvCacheDtype dtype) {
        int blockSize = 16;
        int blocks = Math.max(1, (budgetTokens + blockSize - 1) / blockSize);
        return new KvCache(config.numLayers(), config.attention().keyWidth(), config.attention().valueWidth(), blockSize,
                blocks, maxSequences, maxContext, dtype);
    }

    /** Bytes of float32 keys and values per position across all layers. */
    public static long bytesPerToken(ModelConfig config) {
        return bytesPerToken(config, KvCacheDtype.F32);
    }

    /** Bytes of keys and values per position across all layers, stored as {@code dtype}. */
    public static long bytesPerToken(ModelConfig config, KvCacheDtype dtype) {
        return (long) dtype.bytes() * config.numLayers() * (config.attention().keyWidth() + config.attention().valueWidth());
    }

    public KvCacheDtype dtype() {
        return dtype;
    }

    /** Bytes the keys and values of all blocks take. */
    public long bytes() {
        return (long) dtype.bytes() * numLayers * numBlocks * blockSize * (keyWidth + valueWidth);
    }

    /** Claims a free sequence slot; -1 when all are in use. */
    public int allocateSequence() {
        for (int s = 0; s < maxSequences; s++) {
            if (!inUse[s]) {
                inUse[s] = true;
                lengths[s] = 0;
                blockCounts[s] = 0;
                return s;
            }
        }
        return -1;
    }

    /** Makes room for positions [0, length) of a slot; false (and nothing taken) if the pool or the slot is full. */
    public boolean reserve(int slot, int length) {
        checkSlot(slot);
        int needBlocks = (length + blockSize - 1) / blockSize;
        if (needBlocks > maxBlocksPerSequence) return false;
        int extra = needBlocks - blockCounts[slot];
        if (extra <= 0) return true;
        if (prefix == null) {
            if (extra > freeBlockCount) return false;
            for (int i = 0; i < extra; i++) blockTables[slot][blockCounts[slot]++] = freeBlocks[--freeBlockCount];
            return true;
        }
        if (extra > freeBlockCount + prefix.evictable()) return false;
        for (int i = 0; i < extra; i++) {
            int block = freeBlockCount > 0 ? freeBlocks[--freeBlockCount] : prefix.evict();
            prefix.taken(block);
            blockTables[slot][blockCounts[slot]++] = block;
        }
        return true;
    }

    /** Records that positions [0, length) of a slot hold valid keys and values. */
    public void setLength(int slot, int length) {
        checkSlot(slot);
        if (length > blockCounts[slot] * blockSize) throw new IllegalStateException("slot " + slot + " has no room for " + length);
        lengths[slot] = length;
    }

    public int length(int slot) {
        return lengths[slot];
    }

    /** Returns a slot and its blocks to the pool at once. */
    public void release(int slot) {
        checkSlot(slot);
        if (prefix == null) {
            for (int i = blockCounts[slot] - 1; i >= 0; i--) freeBlocks[freeBlockCount++] = blockTables[slot][i];
        } else {
            dropBlocks(slot, 0);
        }
        blockCounts[slot] = 0;
        lengths[slot] = 0;
        inUse[slot] = false;
    }

    /**
     * Drops positions from {@code length} on (keeps the blocks); used to rewind a sequence. With prefix caching, a
     * sequence may not rewind into a block that is cached or shared: it would overwrite others' keys and values.
     */
    public void truncate(int slot, int length) {
        checkSlot(slot);
        if (prefix != null) {
            for (int i = length / blockSize; i < blockCounts[slot]; i++) {
                int block = blockTables[slot][i];
                if (prefix.isCached(block) || prefix.refCount(block) > 1) {
                    throw new IllegalStateException("slot " + slot + " cannot rewind into cached block " + block);
                }
            }
        }
        lengths[slot] = Math.min(lengths[slot], length);
    }

    /** Blocks the pool can hand out: the free list, plus with prefix caching the cached blocks nobody holds. */
    public int freeBlocks() {
        return prefix == null ? freeBlockCount : freeBlockCount + prefix.evictable();
    }

    /** Blocks a slot holds now (admission counts what a prefilling sequence still has to take). */
    public int blockCount(int slot) {
        checkSlot(slot);
        return blockCounts[slot];
    }

    /** Blocks that positions [0, length) take. */
    public int blocksFor(int length) {
        return (length + blockSize - 1) / blockSize;
    }

    public int totalBlocks() {
        return numBlocks;
    }

    public int blockSize() {
        return blockSize;
    }

    public int maxContext() {
        return maxBlocksPerSequence * blockSize;
    }

    public int maxSequences() {
        return maxSequences;
    }

    public int activeSequences() {
        int n = 0;
        for (boolean b : inUse) if (b) n++;
        return n;
    }

    /** Index of position pos of a slot's row in a layer's key array. */
    public int keyOffset(int slot, int pos) {
        return (blockTables[slot][pos / blockSize] * blockSize + pos % blockSize) * keyWidth;
    }

    public int valueOffset(int slot, int pos) {
        return (blockTables[slot][pos / blockSize] * blockSize + pos % blockSize) * valueWidth;
    }

    /** A layer's float32 keys, indexed by {@link #keyOffset}; null with BF16 ({@link #keyHalves}). */
    public float[] keys(int layer) {
        return keys == null ? null : keys[layer];
    }

    public float[] values(int layer) {
        return values == null ? null : values[layer];
    }

    /** A layer's bfloat16 keys, indexed by {@link #keyOffset}; null with F32 ({@link #keys}). */
    short[] keyHalves(int layer) {
        return keyHalves == null ? null : keyHalves[layer];
    }

    short[] valueHalves(int layer) {
        return valueHalves == null ? null : valueHalves[layer];
    }

    /** Stores {@code count} keys from {@code src[srcOffset ..]} at {@code offset} of a layer, in the cache's dtype. */
    public void writeKeys(int layer, float[] src, int srcOffset, int offset, int count) {
        if (keys != null) System.arraycopy(src, srcOffset, keys[layer], offset, count);
        else narrow(src, srcOffset, keyHalves[layer], offset, count);
    }

    public void writeValues(int layer, float[] src, int srcOffset, int offset, int count) {
        if (values != null) System.arraycopy(src, srcOffset, values[layer], offset, count);
        else narrow(src, srcOffset, valueHalves[layer], offset, count);
    }

    /** The key at {@code index} of a layer as attention reads it (widened from BF16): for tests and references. */
    public float key(int layer, int index) {
        return keys != null ? keys[layer][index] : TensorAccess.bf16ToFloat(keyHalves[layer][index]);
    }

    public float value(int layer, int index) {
        return values != null ? values[layer][index] : TensorAccess.bf16ToFloat(valueHalves[layer][index]);
    }

    private static void narrow(float[] src, int srcOffset, short[] dst, int offset, int count) {
        for (int i = 0; i < count; i++) dst[offset + i] = TensorAccess.floatToBf16(src[srcOffset + i]);
    }

    public int numLayers() {
        return numLayers;
    }

    /** Zeroes nothing but forgets everything: all slots and blocks free. */
    public void clear() {
        Arrays.fill(inUse, false);
        Arrays.fill(blockCounts, 0);
        Arrays.fill(lengths, 0);
        for (int i = 0; i < numBlocks; i++) freeBlocks[i] = numBlocks - 1 - i;
        freeBlockCount = numBlocks;
        if (prefix != null) prefix.clear();
    }

    /** Turns prefix caching on; only while no sequence holds a slot. */
    public void enablePrefixCaching() {
        if (activeSequences() > 0) throw new IllegalStateException("prefix caching is turned on while sequences run");
        if (prefix == null) prefix = new PrefixCache(numBlocks, blockSize);
    }

    public boolean prefixCaching() {
        return prefix != null;
    }

    /**
     * The cached block holding the prefix whose last block has this hash, its parent's hash and the
     * {@code blockSize} tokens of {@code tokens} from {@code from}; -1 when none is cached (or caching is off).
     */
    public int cachedBlock(long hash, long parentHash, int[] tokens, int from) {
        return prefix == null ? -1 : prefix.find(hash, parentHash, tokens, from);
    }

    /**
     * Puts a cached block ({@link #cachedBlock}) at block {@code index} of a slot, which holds positions before that
     * block only (blocks it reserved from there on, never written, are given back first); the slot's length becomes
     * the end of the block. Counts {@code blockSize} prompt tokens as found in the cache.
     */
    public void share(int slot, int index, int block) {
        checkSlot(slot);
        if (prefix == null || !prefix.isCached(block)) throw new IllegalArgumentException("block " + block + " is not cached");
        if (lengths[slot] > index * blockSize || blockCounts[slot] < index) {
            throw new IllegalStateException("slot " + slot + " cannot take a cached block at index " + index);
        }
        dropBlocks(slot, index);
        prefix.ref(block);
        blockTables[slot][index] = block;
        blockCounts[slot] = index + 1;
        lengths[slot] = (index + 1) * blockSize;
        prefix.countHit(blockSize);
    }

    /**
     * Caches block {@code index} of a slot, every position of which is computed and will not be written again,
     * under its hash; false when caching is off or it (or another block with this hash) is cached already.
     */
    public boolean register(int slot, int index, long hash, long parentHash, int[] tokens, int from) {
        checkSlot(slot);
        if (prefix == null) return false;
        if (lengths[slot] < (index + 1) * blockSize) throw new IllegalStateException("block " + index + " of slot " + slot + " is not full");
        return prefix.insert(blockTables[slot][index], hash, parentHash, tokens, from);
    }

    /** Counts prompt tokens looked up in the prefix cache (the hit rate's denominator). */
    public void countPrefixQuery(int promptTokens) {
        if (prefix != null) prefix.countQuery(promptTokens);
    }

    /** Prompt tokens looked up in the prefix cache so far. */
    public long prefixQueriedTokens() {
        return prefix == null ? 0 : prefix.queriedTokens();
    }

    /** Prompt tokens found in the prefix cache so far (their keys and values were not computed again). */
    public long prefixHitTokens() {
        return prefix == null ? 0 : prefix.hitTokens();
    }

    /** Blocks holding a cached prefix, held by a sequence or not. */
    public int cachedBlocks() {
        return prefix == null ? 0 : prefix.cachedBlocks();
    }

    /** Sequences holding a block (for the tests' refcount checks); with caching off, 1 when held. */
    public int blockReferences(int block) {
        if (prefix != null) return prefix.refCount(block);
        for (int s = 0; s < maxSequences; s++) {
            for (int i = 0; i < blockCounts[s]; i++) if (blockTables[s][i] == block) return 1;
        }
        return 0;
    }

    /** The block holding position {@code pos} of a slot. */
    public int blockOf(int slot, int pos) {
        return blockTables[slot][pos / blockSize];
    }

    /** Gives back a slot's blocks from {@code from} on, last first, with prefix caching on. */
    private void dropBlocks(int slot, int from) {
        for (int i = blockCounts[slot] - 1; i >= from; i--) {
            int block = blockTables[slot][i];
            if (prefix.unref(block)) freeBlocks[freeBlockCount++] = block;
        }
        blockCounts[slot] = from;
    }

    private void checkSlot(int slot) {
        if (slot < 0 || slot >= maxSequences || !inUse[slot]) throw new IllegalArgumentException("no sequence in slot " + slot);
    }
}
