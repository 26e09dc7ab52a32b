package io.moeserve.runtime.quantize;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Quantization;
import io.moeserve.runtime.tensor.TensorAccess;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Quantizes a float weight matrix, row by row, into the stored layouts {@link io.moeserve.runtime.tensor.Quantization}
 * reads, with the rounding compressed-tensors and DeepSeek-V3 use, and measures the error it makes.
 *
 * <p>Integers (symmetric, one scale per group of columns): {@code s = amax / ((2^b − 1) / 2)} rounded to the scale
 * dtype (never below float32's epsilon), {@code q = clamp(rint(w / s), −2^(b−1), 2^(b−1) − 1)} (compressed-tensors
 * {@code calculate_qparams} and {@code _quantize}). FP8 (one scale per block): {@code s = amax / 448} rounded to the
 * scale dtype, {@code q = e4m3(w / s)}, saturating. The error is measured against what the kernels will compute,
 * the dequantized {@code (q · s)}: relative RMS error of the tensor, and the row where it is worst.
 *
 * <p>Scales are computed twice (once for the scale tensor, once for the codes), from the same weights in the same
 * order: the same values, without holding a tensor's scales in memory between the two writes.
 */
public final class WeightQuantizer {

    private static final float E4M3_MAX = 448f;
    /** FP8 scale blocks, as DeepSeek-V3 ships them. */
    public static final int FP8_BLOCK = 128;

    /** The error of one quantized tensor. */
    public record Error(double relativeRms, int worstRow, double worstRowRelativeRms) {}

    private WeightQuantizer() {}

    /** The scale of block (rowBlock, colBlock), as stored (rounded to {@code scaleType}). */
    static float scale(WeightMatrix w, TargetFormat format, int blockRows, int blockCols, DType scaleType, int rowBlock,
                       int colBlock) {
        float amax = 0f;
        int r1 = Math.min(w.rows(), (rowBlock + 1) * blockRows);
        int c1 = Math.min(w.cols(), (colBlock + 1) * blockCols);
        for (int r = rowBlock * blockRows; r < r1; r++) {
            for (int c = colBlock * blockCols; c < c1; c++) amax = Math.max(amax, Math.abs(w.get(r, c)));
        }
        float s = format == TargetFormat.FP8 ? amax / E4M3_MAX : amax / (((1 << format.bits()) - 1) / 2f);
        s = Math.max(s, Math.ulp(1f));
        return roundTo(scaleType, s);
    }

    /** Writes all scales, row-major [⌈rows / blockRows⌉, ⌈cols / blockCols⌉], into {@code target}. */
    static void writeScales(WeightMatrix w, TargetFormat format, int blockRows, int blockCols, DType scaleType,
                            MemorySegment target) {
        int sr = (w.rows() + blockRows - 1) / blockRows;
        int sc = (w.cols() + blockCols - 1) / blockCols;
        for (int i = 0; i < sr; i++) {
            for (int j = 0; j < sc; j++) {
                TensorAccess.setFloat(target, scaleType, (long) i * sc + j, scale(w, format, blockRows, blockCols, scaleType, i, j));
            }
        }
    }

    /**
     * Writes the codes into {@code target}: packed int32 words for int2/int3/int4/int8 (compressed-tensors
     * pack-quantized: ⌊32 / b⌋ codes per word, lowest bits first, so int3's top two bits stay 0),
     * one float8_e4m3fn byte per weight for FP8; returns the error.
     */
    static Error writeCodes(WeightMatrix w, TargetFormat format, int blockRows, int blockCols, DType scaleType,
                            MemorySegment target) {
        int rows = w.rows(), cols = w.cols();
        int sc = (cols + blockCols - 1) / blockCols;
        float[] scales = new float[sc];
        int[] codes = new int[cols];
        double errAll = 0, normAll = 0, worst = -1;
        int worstRow = 0;
        int bits = format.bits();
        int perWord = 32 / bits;
        long wordsPerRow = (cols + perWord - 1) / perWord;
        for (int r = 0; r < rows; r++) {
            if (r % blockRows == 0) {
                for (int j = 0; j < sc; j++) scales[j] = scale(w, format, blockRows, blockCols, scaleType, r / blockRows, j);
            }
            double err = 0, norm = 0;
            for (int c = 0; c < cols; c++) {
                float x = w.get(r, c);
                float s = scales[c / blockCols];
                float back;
                if (format == TargetFormat.FP8) {
                    int q = TensorAccess.floatToE4m3(x / s);
                    codes[c] = q;
                    back = TensorAccess.e4m3ToFloat(q) * s;
                } else {
                    int lo = -(1 << (bits - 1)), hi = (1 << (bits - 1)) - 1;
                    int q = (int) Math.max(lo, Math.min(hi, Math.rint(x / s)));
                    codes[c] = q;
                    back = q * s;
                }
                err += (double) (x - back) * (x - back);
                norm += (double) x * x;
            }
            if (format == TargetFormat.FP8) {
                for (int c = 0; c < cols; c++) target.set(ValueLayout.JAVA_BYTE, (long) r * cols + c, (byte) codes[c]);
            } else {
                int offset = 1 << (bits - 1);
                int mask = (1 << bits) - 1;
                for (long k = 0; k < wordsPerRow; k++) {
                    int word = 0;
                    for (int t = 0; t < perWord; t++) {
                        int c = (int) (k * perWord + t);
                        // Padding beyond the last column is stored 0, as pack_to_int32 pads after the offset.
                        int u = c < cols ? codes[c] + offset : 0;
                        word |= (u & mask) << (t * bits);
                    }
                    target.set(TensorAccess.I32_LE, 4 * (r * wordsPerRow + k), word);
                }
            }
            errAll += err;
            normAll += norm;
            double rel = norm == 0 ? (err == 0 ? 0 : Double.POSITIVE_INFINITY) : Math.sqrt(err / norm);
            if (rel > worst) {
                worst = rel;
                worstRow = r;
            }
        }
        double relAll = normAll == 0 ? (errAll == 0 ? 0 : Double.POSITIVE_INFINITY) : Math.sqrt(errAll / normAll);
        return new Error(relAll, worstRow, worst);
    }

    /**
     * A quantized copy of a float matrix in {@code arena}'s memory, as {@code moe quantize} would store it: int2,
     * int3, int4 and int8 packed in groups of {@code groupSize} columns, FP8 in 128×128 blocks; scales in the matrix's dtype.
     * An expert pod uses it to quantize the experts it hosts at start.
     */
    public static WeightMatrix quantize(WeightMatrix w, TargetFormat format, int groupSize, Arena arena) {
        if (w.isQuantized()) throw new IllegalArgumentException(w.name() + " is already quantized (" + w.formatName() + ")");
        if (format == TargetFormat.KEEP) return w;
        if (format == TargetFormat.MXFP4) return mxfp4(w, arena);
        Quantization.Scheme scheme = switch (format) {
            case INT2 -> Quantization.Scheme.PACKED_INT2;
            case INT3 -> Quantization.Scheme.PACKED_INT3;
            case INT4 -> Quantization.Scheme.PACKED_INT4;
            case INT8 -> Quantization.Scheme.PACKED_INT8;
            case FP8 -> Quantization.Scheme.E4M3;
            case MXFP4, KEEP -> throw new IllegalStateException();
        };
        int br = format == TargetFormat.FP8 ? FP8_BLOCK : 1;
        int bc = format == TargetFormat.FP8 ? FP8_BLOCK : groupSize;
        DType scaleType = w.dtype();
        MemorySegment codes = arena.allocate(w.rows() * scheme.rowBytes(w.cols()), 64);
        Quantization shape = new Quantization(scheme, MemorySegment.NULL, scaleType, br, bc, null);
        MemorySegment scales = arena.allocate(shape.scaleBytes(w.rows(), w.cols()), 64);
        writeCodes(w, format, br, bc, scaleType, codes);
        writeScales(w, format, br, bc, scaleType, scales);
        return new WeightMatrix(w.name(), codes, scheme.storage(), w.rows(), w.cols(),
                new Quantization(scheme, scales, scaleType, br, bc, null));
    }

    /** MXFP4 by transformers' rule ({@link Mxfp4}); the group size is the format's, 32. */
    private static WeightMatrix mxfp4(WeightMatrix w, Arena arena) {
        float[] values = new float[w.rows() * w.cols()];
        for (int r = 0; r < w.rows(); r++) {
            for (int c = 0; c < w.cols(); c++) values[r * w.cols() + c] = w.get(r, c);
        }
        Mxfp4.Quantized q = Mxfp4.quantize(values, w.rows(), w.cols());
        MemorySegment codes = arena.allocate(q.blocks().length, 64);
        MemorySegment scales = arena.allocate(q.scales().length, 64);
        MemorySegment.copy(q.blocks(), 0, codes, ValueLayout.JAVA_BYTE, 0, q.blocks().length);
        MemorySegment.copy(q.scales(), 0, scales, ValueLayout.JAVA_BYTE, 0, q.scales().length);
        return new WeightMatrix(w.name(), codes, DType.U8, w.rows(), w.cols(),
                new Quantization(Quantization.Scheme.MXFP4, scales, DType.U8, 1, Mxfp4.BLOCK, null));
    }

    private static float roundTo(DType type, float v) {
        return switch (type) {
            case F32 -> v;
            case BF16 -> TensorAccess.bf16ToFloat(TensorAccess.floatToBf16(v));
            case F16 -> Float.float16ToFloat(Float.floatToFloat16(v));
            default -> throw new IllegalArgumentException("scales are F32, BF16 or F16, not " + type);
        };
    }
}
