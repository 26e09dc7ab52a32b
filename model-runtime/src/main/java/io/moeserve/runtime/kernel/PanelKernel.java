package io.moeserve.runtime.kernel;

import static io.moeserve.runtime.kernel.Simd.FLOATS;
import static io.moeserve.runtime.kernel.Simd.INTS;
import static io.moeserve.runtime.kernel.Simd.LANES;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.HugePages;
import io.moeserve.runtime.tensor.Quantization;
import io.moeserve.runtime.tensor.Quantization.Scheme;
import io.moeserve.runtime.tensor.RowPanels;
import io.moeserve.runtime.tensor.TensorAccess;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Products of int8 or int4 weights with int8 activations ({@link Int8Activations}): integer dot products over row
 * panels, llama.cpp's numerics (Q8_0 activations times Q4_0 or Q8_0 weights), opt-in. The default path
 * ({@link QuantizedKernel}) dequantizes every weight to exactly the float32 the format gives; this one rounds each
 * activation to 8 bits first, so its results are not the dequantized model's bits, but it multiplies small integers
 * in 16-bit lanes, about half the vector operations per weight.
 *
 * <p>Why panels. Row-major codes make a vector of one row's columns, which must be reduced across lanes for every row
 * and, for int4, unpacked by shifts and permutes. A panel of H rows (H = the short lanes of a vector: 32 at 512 bits)
 * stores, for each block of 32 columns, column after column H codes, one per row, so one load is one column for H
 * rows, each lane accumulates its own row's dot product, and no horizontal reduction is ever needed. The activation of
 * that column is one broadcast short. Blocks of a panel follow each other, then the next panel: one sequential stream
 * per panel for the prefetchers. Rows are padded to whole panels with zero codes and zero scales.
 *
 * <p>Int4. Column pair k of a block is H bytes, byte r = {@code ((q[2k] + 8) & 15) | (q[2k + 1] << 4)}: widened with
 * sign to a short s, {@code s & 15} is the even column's code plus 8 and {@code s >> 4} the odd column's code. Each
 * pair costs a load and widening, an and, a shift, two multiplies and two adds (7 operations per 2·H weights); the
 * offset is paid once per block, {@code − 8 · Σ a[even]}, from a sum the activations' quantization keeps. A byte of
 * compressed-tensors' packed int4 (two codes offset by 8) is this byte with its top bit flipped.
 *
 * <p>Why the 16-bit sums are exact. Short lanes wrap modulo 2^16; the running sums of a block may pass 32767 on the
 * way (the even half alone reaches 16 · 15 · 127), but the block's final value is the true dot product of 32 codes,
 * |Σ| ≤ 32 · 8 · 127 = 32512 &lt; 2^15, and a sum modulo 2^16 that is known to lie in [−2^15, 2^15) is that number.
 * Int8 weights (−128..127) times activations (−127..127) give |product| ≤ 16256: two columns are added in short
 * lanes (≤ 32512), then widened and summed in int lanes over the block.
 *
 * <p>The order contract. Per block, the integer sum (exact) becomes a float (exact: |sum| &lt; 2^24), and
 * {@code total = fma(float(sum), wScale · aScale, total)} with the product of the row's scale and the block's
 * activation scale rounded once as float, blocks in increasing order from total = 0. The naive reference
 * ({@link #referenceRow}) does exactly these scalar operations on codes read by the format's own decoder, so the
 * kernel agrees with it bit for bit at every vector width, and a token's result does not depend on its batch: several
 * tokens are one-token products, one after another, over the same panels.
 *
 * <p>Lane order. A panel's rows are not in lane order: row r &lt; H/2 is in short lane 2r, row H/2 + r in lane 2r + 1
 * ({@link #laneOf}). Then the same bits seen as int lanes hold row i in the low half of lane i and row H/2 + i in its
 * high half, and two shifts (low) and one (high) widen a vector of short sums into the two float halves of the panel,
 * rows in order. The obvious widening, {@code convertShape(S2I, part)}, is what this replaces: its part 1 (the upper
 * half) is not compiled to a vector instruction by JDK 25 at 512 bits, and with it in the int8 loop a decode step ran
 * at 10.5 tokens/s instead of the float path's 50 (one thread, the benchmark model).
 *
 * <p>Scales keep their dtype: BF16 and F32 as stored, F16 widened to F32 (exactly) at repacking, converted to float
 * lanes once per scale group. Matrices that cannot take panels (zero points, scale blocks of more than one row, groups
 * that are not multiples of 32 columns, columns that are not a multiple of 32, other schemes) keep the exact path.
 */
public final class PanelKernel {

    /** Short lanes of a vector: rows per panel. */
    static final VectorSpecies<Short> SHORTS = VectorSpecies.of(short.class, FLOATS.vectorShape());
    /** Rows per panel. */
    public static final int HEIGHT = SHORTS.length();
    /** One column of a panel: HEIGHT bytes. */
    private static final VectorSpecies<Byte> COLUMN = VectorSpecies.of(byte.class, VectorShape.forBitSize(HEIGHT * 8));
    private static final int BLOCK = RowPanels.BLOCK;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    private PanelKernel() {}

    /**
     * Whether {@code w} can be repacked: int8 or int4 codes, symmetric, one row of scales per row in groups of a
     * multiple of 32 columns (group or channel strategy), and columns a multiple of 32.
     */
    public static boolean repackable(WeightMatrix w) {
        Quantization q = w.quantization();
        if (q == null || q.zeroPoints() != null || q.blockRows() != 1 || w.cols() % BLOCK != 0) return false;
        Scheme s = q.scheme();
        if (s != Scheme.INT8 && s != Scheme.PACKED_INT8 && s != Scheme.PACKED_INT4) return false;
        return q.blockCols() % BLOCK == 0 || q.blockCols() >= w.cols();
    }

    /** {@code w} with its codes repacked into panels (new memory, 2 MiB pages when large), or {@code w} if it cannot be. */
    public static WeightMatrix repack(WeightMatrix w) {
        if (!repackable(w) || w.panels() != null) return w;
        Quantization q = w.quantization();
        int rows = w.rows(), cols = w.cols();
        int bits = q.scheme() == Scheme.PACKED_INT4 ? 4 : 8;
        int blocks = cols / BLOCK;
        int groupBlocks = Math.min(q.blockCols(), cols) / BLOCK;
        DType scaleType = q.scaleType() == DType.BF16 ? DType.BF16 : DType.F32;
        RowPanels shape = new RowPanels(MemorySegment.NULL, MemorySegment.NULL, scaleType, bits, HEIGHT, blocks, groupBlocks);
        int panels = (rows + HEIGHT - 1) / HEIGHT;
        long blockBytes = shape.blockBytes();
        MemorySegment codes = allocate(panels * blocks * blockBytes);
        int groups = shape.groups();
        MemorySegment scales = allocate((long) panels * groups * HEIGHT * scaleType.byteSize());
        MemorySegment data = w.data();
        long rowBytes = w.rowBytes();
        boolean signedBytes = q.scheme() == Scheme.INT8;
        for (int r = 0; r < rows; r++) {
            int p = r / HEIGHT, lane = laneOf(r % HEIGHT);
            long row = r * rowBytes;
            for (int b = 0; b < blocks; b++) {
                long block = (p * (long) blocks + b) * blockBytes + lane;
                // Int4: byte k of a row holds columns 2k (low nibble) and 2k + 1, each offset by 8; the panel's byte
                // is the same with its high nibble's offset removed. Int8: offset-128 bytes become signed ones.
                int perBlock = bits == 4 ? BLOCK / 2 : BLOCK;
                for (int k = 0; k < perBlock; k++) {
                    byte v = data.get(ValueLayout.JAVA_BYTE, row + (long) b * perBlock + k);
                    codes.set(ValueLayout.JAVA_BYTE, block + (long) k * HEIGHT, signedBytes ? v : (byte) (v ^ 0x80));
                }
            }
            int sc = q.scaleColumns(cols);
            for (int g = 0; g < groups; g++) {
                long at = ((long) p * groups + g) * HEIGHT + lane;
                if (scaleType == DType.BF16) {
                    // The stored bits, copied: BF16 scales are kept as they are, in the codes' lane order.
                    scales.set(TensorAccess.I16_LE, 2 * at, q.scales().get(TensorAccess.I16_LE, 2 * ((long) r * sc + g)));
                } else {
                    // F32 scales are read as two float vectors of LANES rows each: row order.
                    long rowAt = ((long) p * groups + g) * HEIGHT + r % HEIGHT;
                    scales.set(TensorAccess.F32_LE, 4 * rowAt, q.scale(r, g, sc));
                }
            }
        }
        return w.withPanels(new RowPanels(codes, scales, scaleType, bits, HEIGHT, blocks, groupBlocks));
    }

    private static MemorySegment allocate(long bytes) {
        return bytes >= (2L << 20) ? HugePages.allocate(bytes) : Arena.ofAuto().allocate(Math.max(1, bytes), 64);
    }

    /**
     * Rows [rowFrom, rowTo) of {@code y[yOffset + r] = W[r] · x} for tokens [tokenFrom, tokenTo) of x (rows of
     * {@code W.cols} floats from xOffset, results in rows of W.rows floats from yOffset), all of them quantized first
     * into {@code a}. Panel by panel, so that a panel's codes stay in cache while every token uses them, each token
     * by the one-token loop, so each token gets the one-token product's bits. (A tile of 4 tokens sharing each
     * unpacked column, 8 float and 4 short accumulators, measured 3x slower for int4 and 11x for int8 than these
     * one-token passes on JDK 25, 2816x1024, 64 tokens: C2 compiled it badly. With the lane order above, the
     * int4 tile still prefilled 512 tokens of the benchmark model at 62–78 tokens/s against these passes' 114–116,
     * three interleaved rounds on a quiet VM, 2026-12-08.) rowFrom is a multiple of {@link #HEIGHT}.
     */
    static void multiply(WeightMatrix w, float[] x, int xOffset, float[] y, int yOffset, int rowFrom, int rowTo,
                         int tokenFrom, int tokenTo, Int8Activations a) {
        int cols = w.cols(), rows = w.rows();
        RowPanels p = w.panels();
        int end = Math.min(rowTo, rows);
        int n = tokenTo - tokenFrom;
        a.quantizeTokens(x, xOffset + tokenFrom * cols, cols, n);
        int y0 = yOffset + tokenFrom * rows;
        for (int panel = rowFrom / HEIGHT; panel * HEIGHT < end; panel++) {
            for (int t = 0; t < n; t++) {
                if (p.bits() == 4) int4Panel(p, a, t, panel, y, y0 + t * rows, end);
                else int8Panel(p, a, t, panel, y, y0 + t * rows, end);
            }
        }
    }

    private static FloatVector toFloats(IntVector sums) {
        return (FloatVector) sums.convert(VectorOperators.I2F, 0);
    }

    /** Rows [rowFrom, rowTo) of one token's product with activations {@code a}; rowFrom is a multiple of HEIGHT. */
    static void matvec(WeightMatrix w, Int8Activations a, float[] y, int yOffset, int rowFrom, int rowTo) {
        RowPanels p = w.panels();
        if (rowFrom % HEIGHT != 0) throw new IllegalArgumentException("rows from " + rowFrom + " cut a panel of " + HEIGHT);
        int end = Math.min(rowTo, w.rows());
        for (int panel = rowFrom / HEIGHT; panel * HEIGHT < end; panel++) {
            if (p.bits() == 4) int4Panel(p, a, 0, panel, y, yOffset, end);
            else int8Panel(p, a, 0, panel, y, yOffset, end);
        }
    }

    /** One int4 panel for token {@code token} of {@code a}: HEIGHT rows' totals into y (rows before {@code end} only). */
    private static void int4Panel(RowPanels p, Int8Activations a, int token, int panel, float[] y, int yOffset, int end) {
        MemorySegment codes = p.codes();
        int cols = a.cols;
        short[] q = a.codes;
        float[] d = a.scales;
        short[] even = a.evenSums;
        int blocks = p.blocks(), groupBlocks = p.groupBlocks(), groups = p.groups();
        long blockBytes = p.blockBytes();
        long base = (long) panel * blocks * blockBytes;
        FloatVector total0 = FloatVector.zero(FLOATS);
        FloatVector total1 = total0;
        for (int g = 0; g < groups; g++) {
            long scaleAt = ((long) panel * groups + g) * HEIGHT;
            FloatVector s0 = scales(p, scaleAt, 0);
            FloatVector s1 = scales(p, scaleAt, 1);
            int bEnd = Math.min(blocks, (g + 1) * groupBlocks);
            for (int b = g * groupBlocks; b < bEnd; b++) {
                long at = base + b * blockBytes;
                int c = token * cols + b * BLOCK;
                ShortVector acc = ShortVector.zero(SHORTS);
                for (int k = 0; k < BLOCK / 2; k++) {
                    ShortVector s = (ShortVector) ByteVector.fromMemorySegment(COLUMN, codes, at + (long) k * HEIGHT, LE)
                            .convertShape(VectorOperators.B2S, SHORTS, 0);
                    acc = acc.add(s.and((short) 15).mul(q[c + 2 * k]))
                            .add(s.lanewise(VectorOperators.ASHR, 4).mul(q[c + 2 * k + 1]));
                }
                IntVector sums = acc.sub((short) (8 * even[token * blocks + b])).reinterpretAsInts();
                float ad = d[token * blocks + b];
                total0 = toFloats(low(sums)).fma(s0.mul(ad), total0);
                total1 = toFloats(high(sums)).fma(s1.mul(ad), total1);
            }
        }
        store(total0, total1, panel, y, yOffset, end);
    }

    /** One int8 panel, as {@link #int4Panel}. */
    private static void int8Panel(RowPanels p, Int8Activations a, int token, int panel, float[] y, int yOffset, int end) {
        MemorySegment codes = p.codes();
        int cols = a.cols;
        short[] q = a.codes;
        float[] d = a.scales;
        int blocks = p.blocks(), groupBlocks = p.groupBlocks(), groups = p.groups();
        long blockBytes = p.blockBytes();
        long base = (long) panel * blocks * blockBytes;
        FloatVector total0 = FloatVector.zero(FLOATS);
        FloatVector total1 = total0;
        for (int g = 0; g < groups; g++) {
            long scaleAt = ((long) panel * groups + g) * HEIGHT;
            FloatVector s0 = scales(p, scaleAt, 0);
            FloatVector s1 = scales(p, scaleAt, 1);
            int bEnd = Math.min(blocks, (g + 1) * groupBlocks);
            for (int b = g * groupBlocks; b < bEnd; b++) {
                long at = base + b * blockBytes;
                int c = token * cols + b * BLOCK;
                IntVector sum0 = IntVector.zero(INTS);
                IntVector sum1 = sum0;
                for (int j = 0; j < BLOCK; j += 2) {
                    ShortVector w0 = (ShortVector) ByteVector.fromMemorySegment(COLUMN, codes, at + (long) j * HEIGHT, LE)
                            .convertShape(VectorOperators.B2S, SHORTS, 0);
                    ShortVector w1 = (ShortVector) ByteVector.fromMemorySegment(COLUMN, codes, at + (long) (j + 1) * HEIGHT, LE)
                            .convertShape(VectorOperators.B2S, SHORTS, 0);
                    IntVector pair = w0.mul(q[c + j]).add(w1.mul(q[c + j + 1])).reinterpretAsInts();
                    sum0 = sum0.add(low(pair));
                    sum1 = sum1.add(high(pair));
                }
                float ad = d[token * blocks + b];
                total0 = toFloats(sum0).fma(s0.mul(ad), total0);
                total1 = toFloats(sum1).fma(s1.mul(ad), total1);
            }
        }
        store(total0, total1, panel, y, yOffset, end);
    }

    /**
     * The short lane that holds row {@code r} of a panel: rows 0..H/2−1 in the even lanes, the others in the odd ones,
     * so that int lane i of the same bits holds row i in its low half and row H/2 + i in its high half.
     */
    static int laneOf(int r) {
        return r < HEIGHT / 2 ? 2 * r : 2 * (r - HEIGHT / 2) + 1;
    }

    /** Rows 0..H/2−1 of short lanes seen as ints (see {@link #laneOf}): each low half, sign-extended. */
    private static IntVector low(IntVector pairs) {
        return pairs.lanewise(VectorOperators.LSHL, 16).lanewise(VectorOperators.ASHR, 16);
    }

    /** Rows H/2..H−1 of short lanes seen as ints: each high half, sign-extended. */
    private static IntVector high(IntVector pairs) {
        return pairs.lanewise(VectorOperators.ASHR, 16);
    }

    /**
     * Half {@code part} (0: rows 0..LANES−1 of the panel, 1: the rest) of a panel's scales for one group, as floats.
     * BF16 scales are stored in the codes' lane order and widened by shifting or masking their halves into place
     * (exact); F32 scales in row order.
     */
    private static FloatVector scales(RowPanels p, long at, int part) {
        if (p.scaleType() == DType.F32) {
            return FloatVector.fromMemorySegment(FLOATS, p.scales(), 4 * (at + (long) part * LANES), LE);
        }
        IntVector bits = ShortVector.fromMemorySegment(SHORTS, p.scales(), 2 * at, LE).reinterpretAsInts();
        IntVector floatBits = part == 0 ? bits.lanewise(VectorOperators.LSHL, 16) : bits.and(0xffff0000);
        return floatBits.reinterpretAsFloats();
    }

    private static void store(FloatVector total0, FloatVector total1, int panel, float[] y, int yOffset, int end) {
        int row = panel * HEIGHT;
        if (row + HEIGHT <= end) {
            total0.intoArray(y, yOffset + row);
            total1.intoArray(y, yOffset + row + LANES);
            return;
        }
        VectorMask<Float> m0 = FLOATS.indexInRange(row, end);
        VectorMask<Float> m1 = FLOATS.indexInRange(row + LANES, end);
        total0.intoArray(y, yOffset + row, m0);
        total1.intoArray(y, yOffset + row + LANES, m1);
    }

    /**
     * The naive reference for row {@code r} with activations {@code a}: codes by the format's own decoder
     * ({@link Quantization#code}), scales by {@link Quantization#scale}, in the order of the contract above.
     */
    static float referenceRow(WeightMatrix w, Int8Activations a, int r) {
        Quantization q = w.quantization();
        int cols = w.cols();
        int sc = q.scaleColumns(cols);
        long row = r * w.rowBytes();
        float total = 0f;
        for (int b = 0; b < cols / BLOCK; b++) {
            int sum = 0;
            for (int j = 0; j < BLOCK; j++) {
                int c = b * BLOCK + j;
                sum += q.code(w.data(), row, c) * a.codes[c];
            }
            float weightScale = q.scale(r, b * BLOCK / q.blockCols(), sc);
            total = Math.fma((float) sum, weightScale * a.scales[b], total);
        }
        return total;
    }
}
