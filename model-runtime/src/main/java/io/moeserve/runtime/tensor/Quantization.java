package io.moeserve.runtime.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * How a quantized weight matrix is stored: the code of each weight, and the scales (and zero points) that turn codes
 * back into weights. Everything stays where the checkpoint put it, usually mapped from disk.
 *
 * <p>The weight in row r, column c is {@code float(q(r, c) - zp(r, c)) · scale(r, c)} for integer codes,
 * {@code e4m3(q(r, c)) · scale(r, c)} for FP8 codes and {@code e2m1(q(r, c)) · scale(r, c)} for FP4 codes, a
 * float32 product rounded once: the format's dequantization (compressed-tensors {@code _dequantize}, DeepSeek-V3's
 * {@code weight_dequant}, gpt-oss's {@code FP4_VALUES[q] · 2^(e − 127)}), in float32. For FP4 codes the product
 * is exact (a power of two times a value of two significant bits), or ±infinity where the format's value exceeds
 * float32's range (codes of 2 and more with the largest scales), as in transformers' bfloat16 dequantization. Scales come in blocks
 * of {@code blockRows × blockCols} weights: {@code scale(r, c) = scales[r / blockRows][c / blockCols]}, a row-major
 * [⌈rows / blockRows⌉, ⌈cols / blockCols⌉] tensor whose last row and column of blocks may be partial. That one rule
 * covers every strategy the formats use: a block of [128, 128] (DeepSeek-V3 FP8), a group of G columns [1, G], a
 * channel [1, cols], the whole tensor [rows, cols]. Scales are floats (F32, BF16, F16), except MXFP4's: one E8M0
 * byte e per group of 32 columns, standing for 2^(e − 127) ({@link TensorAccess#e8m0ToFloat}; 0xff is NaN).
 *
 * <p>Codes, by {@link Scheme}, each row stored on its own:
 * <ul>
 *   <li>{@code E4M3}: one float8_e4m3fn byte per weight;
 *   <li>{@code INT8}: one signed byte per weight (compressed-tensors {@code int-quantized});
 *   <li>{@code PACKED_INT8}, {@code PACKED_INT4}, {@code PACKED_INT3}, {@code PACKED_INT2}: compressed-tensors
 *       {@code pack-quantized} ({@code pack_to_int32}): little-endian int32 words, p = ⌊32 / b⌋ codes per word (4,
 *       8, 10, 16), column w·p + t at bits [t·b, t·b + b) of word w, offset by 2^(b−1) (so int4 −8..7 is stored
 *       0..15, int3 −4..3 is 0..7, int2 −2..1 is 0..3); a row is padded with zero codes to whole words. An int3 word
 *       leaves its top two bits unused (written 0, ignored when read). In memory, byte k of a PACKED_INT4 row
 *       holds column 2k in its low nibble and 2k + 1 in its high nibble; byte k of a PACKED_INT2 row holds columns
 *       4k .. 4k + 3, lowest bits first. PACKED_INT3's codes do not fall on bytes: column c is bits
 *       [3·(c mod 10), 3·(c mod 10) + 3) of word ⌊c / 10⌋.
 *   <li>{@code MXFP4}: OCP MX FP4 as gpt-oss ships its experts ({@code *_blocks}, U8 [.., rows, cols / 32, 16]):
 *       two FP4 E2M1 codes per byte, byte k of a row holding column 2k in its low nibble and 2k + 1 in its high
 *       nibble (the nibble order of PACKED_INT4, unsigned, no offset); scales U8 [rows, cols / 32], blocks of
 *       1 × 32 exactly, no zero points; cols a multiple of 32.
 * </ul>
 * Zero points (asymmetric integer schemes only, null otherwise) have the scales' block shape. For the packed schemes
 * they are packed as compressed-tensors packs them: along the rows of blocks, p = 32 / b per int32 word, offset like
 * the codes, so {@code zp} for row block R and column block C is code R % p of word [R / p][C]. For {@code INT8} they
 * are signed bytes, [row blocks][column blocks].
 *
 * @param scheme      how codes are stored
 * @param scales      [⌈rows / blockRows⌉ × ⌈cols / blockCols⌉] scales of {@code scaleType}, row-major
 * @param scaleType   F32, BF16 or F16; U8 (E8M0) for MXFP4
 * @param blockRows   rows per scale block (≥ 1)
 * @param blockCols   columns per scale block (≥ 1)
 * @param zeroPoints  zero points as above, or null when symmetric
 */
public record Quantization(Scheme scheme, MemorySegment scales, DType scaleType, int blockRows, int blockCols,
                           MemorySegment zeroPoints) {

    /** How the codes of one row are stored. */
    public enum Scheme {
        E4M3(8, DType.F8_E4M3),
        INT8(8, DType.I8),
        PACKED_INT8(8, DType.I32),
        PACKED_INT4(4, DType.I32),
        PACKED_INT3(3, DType.I32),
        PACKED_INT2(2, DType.I32),
        MXFP4(4, DType.U8);

        /** Columns per MXFP4 scale (the OCP MX block size). */
        public static final int MX_BLOCK = 32;

        private final int bits;
        private final DType storage;

        Scheme(int bits, DType storage) {
            this.bits = bits;
            this.storage = storage;
        }

        /** Bits per weight code. */
        public int bits() {
            return bits;
        }

        /** The safetensors dtype the codes are stored in. */
        public DType storage() {
            return storage;
        }

        /** Whether codes are integers (as opposed to FP8 or FP4 values). */
        public boolean isInteger() {
            return this == INT8 || this == PACKED_INT8 || this == PACKED_INT4 || this == PACKED_INT3 || this == PACKED_INT2;
        }

        /** Codes per int32 word of the packed schemes (compressed-tensors' pack factor, ⌊32 / bits⌋). */
        public int codesPerWord() {
            return 32 / bits;
        }

        /** Bytes one row of {@code cols} weights takes, padding included. */
        public long rowBytes(int cols) {
            return switch (this) {
                case E4M3, INT8 -> cols;
                case PACKED_INT8 -> 4L * ((cols + 3) / 4);
                case PACKED_INT4 -> 4L * ((cols + 7) / 8);
                case PACKED_INT3 -> 4L * ((cols + 9) / 10);
                case PACKED_INT2 -> 4L * ((cols + 15) / 16);
                case MXFP4 -> cols / 2L;
            };
        }
    }

    public Quantization {
        if (blockRows < 1 || blockCols < 1) {
            throw new IllegalArgumentException("scale blocks must be at least 1x1, got " + blockRows + "x" + blockCols);
        }
        if (scheme == Scheme.MXFP4) {
            if (scaleType != DType.U8 || blockRows != 1 || blockCols != Scheme.MX_BLOCK || zeroPoints != null) {
                throw new IllegalArgumentException("MXFP4 has one E8M0 (U8) scale per 1x" + Scheme.MX_BLOCK
                        + " block and no zero points, not " + scaleType + " scales in blocks of " + blockRows + "x"
                        + blockCols + (zeroPoints != null ? " with zero points" : ""));
            }
        } else if (!scaleType.isFloat()) {
            throw new IllegalArgumentException("scales must be F32, BF16 or F16, not " + scaleType);
        }
        if (zeroPoints != null && !scheme.isInteger()) {
            throw new IllegalArgumentException(scheme + " weights have no zero points");
        }
    }

    /** Scale blocks per row of blocks, for a matrix of {@code cols} columns. */
    public int scaleColumns(int cols) {
        return (cols + blockCols - 1) / blockCols;
    }

    /** Rows of scale blocks, for a matrix of {@code rows} rows. */
    public int scaleRows(int rows) {
        return (rows + blockRows - 1) / blockRows;
    }

    /** Bytes of the scales a matrix of this shape needs. */
    public long scaleBytes(int rows, int cols) {
        return (long) scaleRows(rows) * scaleColumns(cols) * scaleType.byteSize();
    }

    /** Bytes of the zero points a matrix of this shape needs (0 when symmetric). */
    public long zeroPointBytes(int rows, int cols) {
        if (zeroPoints == null) return 0;
        if (scheme == Scheme.INT8) return (long) scaleRows(rows) * scaleColumns(cols);
        int perWord = 32 / scheme.bits;
        return 4L * ((scaleRows(rows) + perWord - 1) / perWord) * scaleColumns(cols);
    }

    /** The scale of row block {@code rowBlock}, column block {@code colBlock} (scalar path). */
    public float scale(int rowBlock, int colBlock, int scaleColumns) {
        long index = (long) rowBlock * scaleColumns + colBlock;
        if (scheme == Scheme.MXFP4) return TensorAccess.e8m0ToFloat(scales.get(ValueLayout.JAVA_BYTE, index));
        return TensorAccess.getFloat(scales, scaleType, index);
    }

    /** The signed zero point of a block, 0 when symmetric (scalar path). */
    public int zeroPoint(int rowBlock, int colBlock, int scaleColumns) {
        if (zeroPoints == null) return 0;
        if (scheme == Scheme.INT8) return zeroPoints.get(ValueLayout.JAVA_BYTE, (long) rowBlock * scaleColumns + colBlock);
        int bits = scheme.bits;
        int perWord = 32 / bits;
        int word = zeroPoints.get(TensorAccess.I32_LE, 4L * ((long) (rowBlock / perWord) * scaleColumns + colBlock));
        return ((word >>> ((rowBlock % perWord) * bits)) & ((1 << bits) - 1)) - (1 << (bits - 1));
    }

    /** The code of column {@code col} of the row starting at byte {@code rowOffset}: a signed integer, or FP8/FP4 bits. */
    public int code(MemorySegment data, long rowOffset, int col) {
        return switch (scheme) {
            case E4M3 -> data.get(ValueLayout.JAVA_BYTE, rowOffset + col) & 0xff;
            case INT8 -> data.get(ValueLayout.JAVA_BYTE, rowOffset + col);
            case PACKED_INT8 -> (data.get(ValueLayout.JAVA_BYTE, rowOffset + col) & 0xff) - 128;
            case PACKED_INT4 -> {
                int b = data.get(ValueLayout.JAVA_BYTE, rowOffset + col / 2);
                yield ((col & 1) == 0 ? b & 0xf : (b >>> 4) & 0xf) - 8;
            }
            case PACKED_INT3 -> {
                int word = data.get(TensorAccess.I32_LE, rowOffset + 4L * (col / 10));
                yield ((word >>> (3 * (col % 10))) & 7) - 4;
            }
            case PACKED_INT2 -> {
                int b = data.get(ValueLayout.JAVA_BYTE, rowOffset + col / 4);
                yield ((b >>> (2 * (col & 3))) & 3) - 2;
            }
            case MXFP4 -> {
                int b = data.get(ValueLayout.JAVA_BYTE, rowOffset + col / 2);
                yield (col & 1) == 0 ? b & 0xf : (b >>> 4) & 0xf;
            }
        };
    }

    /** The dequantized weight, by the format's formula (the reference every kernel must reproduce bit for bit). */
    public float weight(MemorySegment data, int cols, int row, int col) {
        int sc = scaleColumns(cols);
        int rb = row / blockRows;
        int cb = col / blockCols;
        int q = code(data, row * scheme.rowBytes(cols), col);
        float s = scale(rb, cb, sc);
        if (scheme == Scheme.E4M3) return TensorAccess.e4m3ToFloat(q) * s;
        if (scheme == Scheme.MXFP4) return TensorAccess.e2m1ToFloat(q) * s;
        return (float) (q - zeroPoint(rb, cb, sc)) * s;
    }
}
