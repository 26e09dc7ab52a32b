package io.moeserve.runtime.model;

import io.moeserve.runtime.config.ModelConfig;
import java.util.Arrays;

/**
 * Keys and values of every sequence in flight, in fixed-size blocks taken from one pool.
 *
 * <p>Paged like vLLM's cache: a sequence owns a table of block ids, one block per {@code blockSize} positions, so
 * memory is taken as sequences grow and returned at once when they end, and the pool's size is the memory budget
 * that admission control works against. Storage is one float array per layer for keys and one for values,
 * indexed by (block · blockSize + offset) · width. Everything is allocated up front; growing a sequence by a token
 * pops at most one int from the free list.
 */
public final class KvCache {
    private final int numLayers;
    private final int blockSize;
    private final int numBlocks;
    private final int keyWidth;
    private final int valueWidth;
    private final int maxSequences;
    private final int maxBlocksPerSequence;
    private final float[][] keys;
    private final float[][] values;
    private final int[][] blockTables;
    private final int[] blockCounts;
    private final int[] lengths;
    private final boolean[] inUse;
    private final int[] freeBlocks;
    private int freeBlockCount;

    /**
     * @param maxContext longest sequence (prompt + generated) any slot may hold
     */
    public KvCache(int numLayers, int keyWidth, int valueWidth, int blockSize, int numBlocks, int maxSequences, int maxContext) {
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
        this.keys = new float[numLayers][numBlocks * blockSize * keyWidth];
        this.values = new float[numLayers][numBlocks * blockSize * valueWidth];
        this.blockTables = new int[maxSequences][maxBlocksPerSequence];
        this.blockCounts = new int[maxSequences];
        this.lengths = new int[maxSequences];
        this.inUse = new boolean[maxSequences];
        this.freeBlocks = new int[numBlocks];
        for (int i = 0; i < numBlocks; i++) freeBlocks[i] = numBlocks - 1 - i;
        this.freeBlockCount = numBlocks;
    }

    /** A cache sized for a model: blocks enough for {@code budgetTokens} positions in total. */
    public static KvCache forModel(ModelConfig config, int budgetTokens, int maxSequences, int maxContext) {
        int blockSize = 16;
        int blocks = Math.max(1, (budgetTokens + blockSize - 1) / blockSize);
        return new KvCache(config.numLayers(), config.attention().keyWidth(), config.attention().valueWidth(), blockSize,
                blocks, maxSequences, maxContext);
    }

    /** Bytes of keys and values per position across all layers. */
    public static long bytesPerToken(ModelConfig config) {
        return 4L * config.numLayers() * (config.attention().keyWidth() + config.attention().valueWidth());
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
        if (extra > freeBlockCount) return false;
        for (int i = 0; i < extra; i++) blockTables[slot][blockCounts[slot]++] = freeBlocks[--freeBlockCount];
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
        for (int i = blockCounts[slot] - 1; i >= 0; i--) freeBlocks[freeBlockCount++] = blockTables[slot][i];
        blockCounts[slot] = 0;
        lengths[slot] = 0;
        inUse[slot] = false;
    }

    /** Drops positions from {@code length} on (keeps the blocks); used to rewind a sequence. */
    public void truncate(int slot, int length) {
        checkSlot(slot);
        lengths[slot] = Math.min(lengths[slot], length);
    }

    public int freeBlocks() {
        return freeBlockCount;
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

    public float[] keys(int layer) {
        return keys[layer];
    }

    public float[] values(int layer) {
        return values[layer];
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
    }

    private void checkSlot(int slot) {
        if (slot < 0 || slot >= maxSequences || !inUse[slot]) throw new IllegalArgumentException("no sequence in slot " + slot);
    }
}
