package io.moeserve.runtime.tensor;

import java.lang.foreign.MemorySegment;

/**
 * A quantized matrix's int8 or int4 codes and scales repacked for integer dot products with int8 activations
 * ({@code kernel.PanelKernel} builds them at load, computes with them, and explains the layout). In memory only, never
 * on disk: the layout depends on the vector width of the JVM that built it.
 *
 * @param codes       panel-major codes: for panel p, block b of 32 columns, {@code blockBytes} bytes at
 *                    {@code (p · blocks + b) · blockBytes}
 * @param scales      per panel and scale group, {@code height} scales of {@code scaleType}
 * @param scaleType   F32 or BF16 (F16 scales are widened to F32, which is exact)
 * @param bits        4 or 8
 * @param height      rows per panel
 * @param blocks      blocks of 32 columns per row
 * @param groupBlocks blocks per scale group (the checkpoint's group size / 32; the last group may be cut short)
 */
public record RowPanels(MemorySegment codes, MemorySegment scales, DType scaleType, int bits, int height, int blocks,
                        int groupBlocks) {

    /** Columns per activation block (Q8_0's block). */
    public static final int BLOCK = 32;

    public RowPanels {
        if (bits != 4 && bits != 8) throw new IllegalArgumentException("panels hold int4 or int8 codes, not " + bits + " bits");
        if (scaleType != DType.F32 && scaleType != DType.BF16) {
            throw new IllegalArgumentException("panel scales are F32 or BF16, not " + scaleType);
        }
        if (blocks < 1 || groupBlocks < 1 || height < 1) {
            throw new IllegalArgumentException(blocks + " blocks in groups of " + groupBlocks);
        }
    }

    /** Bytes of one panel's block of 32 columns. */
    public int blockBytes() {
        return height * BLOCK * bits / 8;
    }

    /** Scale groups per row. */
    public int groups() {
        return (blocks + groupBlocks - 1) / groupBlocks;
    }
}
