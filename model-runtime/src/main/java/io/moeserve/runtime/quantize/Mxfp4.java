package io.moeserve.runtime.quantize;

import io.moeserve.runtime.checkpoint.TensorSpec;
import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Quantization;
import io.moeserve.runtime.tensor.TensorAccess;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * MXFP4 quantization as gpt-oss's weights were made, for writers of MXFP4 checkpoints and for tests: a float matrix
 * [rows, cols] to the checkpoint's {@code *_blocks} (two E2M1 codes per byte, byte k of a row holding column 2k in
 * its low nibble and 2k + 1 in its high nibble) and {@code *_scales} (one E8M0 byte per 32 columns), and back.
 *
 * <p>The rule is that of transformers' {@code quantize_to_mxfp4}, which calls triton_kernels' {@code downcast_to_mxfp}
 * in its default mode (DequantScaleRoundingMode.ROUND_UP; {@code downcast_to_mxfp_torch} is its reference), per
 * group of 32 columns of a row:
 * <ol>
 *   <li>{@code d = amax / 6} in float32, amax the largest |w| of the group (6 is E2M1's largest value);
 *   <li>the scale is d rounded up to a power of two, computed on the float's bits as
 *       {@code (bits(d) + 0x7fffff) & 0x7f800000}: 2^⌈log2 d⌉ for a normal d, 2^−126 for a subnormal one, 0 for
 *       d = 0. The stored byte e is that float's exponent field, so the scale reads back as 2^(e − 127) (and an
 *       all-zero group gets e = 0, whose codes are all zero);
 *   <li>{@code q = w · (1 / scale)} in float32 (exact: a power of two), or {@code w · 0} for a zero scale; then
 *       |q| ≤ 6, or a rounding of the division above it;
 *   <li>the code is the E2M1 value nearest q, <b>ties away from zero</b> (the reference adds one to the bit below
 *       the kept mantissa bit and shifts: 0.25 → 0.5, 0.75 → 1, 1.25 → 1.5, 1.75 → 2, 2.5 → 3, 3.5 → 4, 5 → 6;
 *       IEEE's ties-to-even would give 0, 1, 1, 2, 2, 4, 4), saturating at ±6, with q's sign bit (so −0 and small
 *       negatives become code 8, −0).
 * </ol>
 * Dequantizing is exact ({@link TensorAccess#e2m1ToFloat} · {@link TensorAccess#e8m0ToFloat}), so every weight's
 * error is at most half a step of its group's grid, at most the group's scale (the gap between 4 and 6), and a
 * matrix of values the format holds comes back unchanged (its codes may differ: 3 · 2^k may come back as 6 · 2^(k−1)),
 * except for groups of scale byte 0, whose 0.5 · 2^−127 is below the smallest scale the rule picks (2^−126).
 * Non-finite weights are refused: the reference turns them into ±6 or a NaN scale silently.
 */
public final class Mxfp4 {

    /** Columns per scale. */
    public static final int BLOCK = Quantization.Scheme.MX_BLOCK;

    /**
     * A quantized matrix in the checkpoint's layout.
     *
     * @param blocks rows × cols / 2 bytes: {@code X_blocks} [rows, cols / 32, 16] in row-major order
     * @param scales rows × cols / 32 E8M0 bytes: {@code X_scales} [rows, cols / 32]
     */
    public record Quantized(byte[] blocks, byte[] scales) {}

    private Mxfp4() {}

    /** Quantizes the row-major [rows, cols] matrix {@code w} (cols a multiple of 32) by the rule above. */
    public static Quantized quantize(float[] w, int rows, int cols) {
        checkShape(w.length, rows, cols, "weights");
        int groups = cols / BLOCK;
        byte[] blocks = new byte[Math.multiplyExact(rows, cols / 2)];
        byte[] scales = new byte[rows * groups];
        for (int r = 0; r < rows; r++) {
            for (int g = 0; g < groups; g++) {
                int start = r * cols + g * BLOCK;
                float amax = 0f;
                for (int i = start; i < start + BLOCK; i++) {
                    if (!Float.isFinite(w[i])) {
                        throw new IllegalArgumentException("weight [" + r + ", " + (i - r * cols) + "] is " + w[i]
                                + "; MXFP4 holds finite weights only");
                    }
                    amax = Math.max(amax, Math.abs(w[i]));
                }
                int scaleBits = (Float.floatToRawIntBits(amax / 6f) + 0x7f_ffff) & 0x7f80_0000;
                float scale = Float.intBitsToFloat(scaleBits);
                float inverse = scale == 0f ? 0f : 1f / scale;
                scales[r * groups + g] = (byte) (scaleBits >>> 23);
                for (int i = start; i < start + BLOCK; i += 2) {
                    int low = e2m1(w[i] * inverse), high = e2m1(w[i + 1] * inverse);
                    blocks[i / 2] = (byte) (low | high << 4);
                }
            }
        }
        return new Quantized(blocks, scales);
    }

    /** The row-major [rows, cols] float32 weights that {@code blocks} and {@code scales} stand for, exactly. */
    public static float[] dequantize(byte[] blocks, byte[] scales, int rows, int cols) {
        checkShape(2L * blocks.length, rows, cols, "blocks (two codes a byte)");
        checkShape((long) BLOCK * scales.length, rows, cols, "scales (one per 32 columns)");
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            int b = blocks[i / 2];
            int code = (i & 1) == 0 ? b & 0xf : (b >>> 4) & 0xf;
            w[i] = TensorAccess.e2m1ToFloat(code) * TensorAccess.e8m0ToFloat(scales[i / BLOCK]);
        }
        return w;
    }

    /** Element {@code index} of a fused expert tensor [E, in, out] in transformers' layout (input-major). */
    @FunctionalInterface
    public interface FusedSource {
        float get(long index);
    }

    /**
     * Each expert of a fused [E, in, out] tensor (transformers' gpt-oss layout) transposed to its [out, in] rows,
     * as the hub stores gpt-oss's experts, and quantized.
     */
    public static Quantized[] quantizeFused(FusedSource source, int experts, int in, int outs) {
        Quantized[] out = new Quantized[experts];
        float[] w = new float[in * outs];
        for (int x = 0; x < experts; x++) {
            long base = (long) x * in * outs;
            for (int i = 0; i < in; i++) {
                for (int o = 0; o < outs; o++) w[o * in + i] = source.get(base + (long) i * outs + o);
            }
            out[x] = quantize(w, outs, in);
        }
        return out;
    }

    /**
     * The checkpoint tensors of a fused expert tensor {@code name} in MXFP4, as the hub ships gpt-oss:
     * {@code name_blocks} U8 [E, out, in / 32, 16] and {@code name_scales} U8 [E, out, in / 32]. {@code quantized}
     * is asked once, by whichever of the two is written first.
     */
    public static List<TensorSpec> fusedTensors(String name, int experts, int in, int outs, Supplier<Quantized[]> quantized) {
        Quantized[][] once = new Quantized[1][];
        Supplier<Quantized[]> memo = () -> {
            synchronized (once) {
                if (once[0] == null) once[0] = quantized.get();
                return once[0];
            }
        };
        int groups = in / BLOCK;
        return List.of(
                new TensorSpec(name + "_blocks", DType.U8, new long[] {experts, outs, groups, BLOCK / 2},
                        target -> write(target, memo.get(), Quantized::blocks)),
                new TensorSpec(name + "_scales", DType.U8, new long[] {experts, outs, groups},
                        target -> write(target, memo.get(), Quantized::scales)));
    }

    private static void write(MemorySegment target, Quantized[] experts, Function<Quantized, byte[]> part) {
        long at = 0;
        for (Quantized q : experts) {
            byte[] b = part.apply(q);
            MemorySegment.copy(b, 0, target, ValueLayout.JAVA_BYTE, at, b.length);
            at += b.length;
        }
    }

    /**
     * The E2M1 code nearest {@code q}, ties away from zero, saturating at ±6; bit 3 is q's sign. The thresholds are
     * the midpoints of 0, 0.5, 1, 1.5, 2, 3, 4, 6, each rounding up, as the reference's guard-bit increment does.
     */
    static int e2m1(float q) {
        int sign = Float.floatToRawIntBits(q) < 0 ? 8 : 0;
        float a = Math.abs(q);
        int magnitude = a < 0.25f ? 0 : a < 0.75f ? 1 : a < 1.25f ? 2 : a < 1.75f ? 3
                : a < 2.5f ? 4 : a < 3.5f ? 5 : a < 5f ? 6 : 7;
        return sign | magnitude;
    }

    private static void checkShape(long elements, int rows, int cols, String what) {
        if (rows <= 0 || cols <= 0 || cols % BLOCK != 0) {
            throw new IllegalArgumentException("MXFP4 needs rows > 0 and a positive multiple of " + BLOCK + " columns, not "
                    + rows + "x" + cols);
        }
        if (elements != (long) rows * cols) {
            throw new IllegalArgumentException(what + " hold " + elements + " weights, not " + rows + "x" + cols);
        }
    }
}
