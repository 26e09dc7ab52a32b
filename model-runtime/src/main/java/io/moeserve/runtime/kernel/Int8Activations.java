package io.moeserve.runtime.kernel;

import io.moeserve.runtime.tensor.RowPanels;

/**
 * One token's activations quantized as llama.cpp's Q8_0 quantizes them, per block of 32 columns: {@code amax} the
 * largest magnitude in the block, {@code d = amax / 127} (float), and each code {@code round(x / d)} (half away from
 * zero) clamped to [−127, 127], all 0 when {@code amax} is 0. Codes are kept as shorts, pre-widened for the
 * {@link PanelKernel}'s short lanes, with each block's {@code d} and the sum of its codes at even columns (the int4
 * kernel's correction for codes stored with an offset of 8).
 *
 * <p>Scratch owned by one kernel slot and reused: it grows to the most tokens times columns seen, never per call. It
 * remembers which input it holds, so the gate and up projections of a fused SwiGLU (or a batch's products of one
 * hidden state) quantize their shared input once per call ({@link #forget} at the start of a call).
 */
final class Int8Activations {
    static final int BLOCK = RowPanels.BLOCK;

    short[] codes = new short[0];
    float[] scales = new float[0];
    short[] evenSums = new short[0];
    private float[] source;
    private int sourceOffset = -1;
    private int sourceCols;

    /** Columns per token of what this scratch holds. */
    int cols;

    /** Quantizes one token, {@code x[offset .. offset + cols)}, unless it is what this scratch holds since the last forget. */
    void quantize(float[] x, int offset, int cols) {
        if (x == source && offset == sourceOffset && cols == sourceCols) return;
        quantizeTokens(x, offset, cols, 1);
        source = x;
        sourceOffset = offset;
        sourceCols = cols;
    }

    /**
     * Quantizes {@code count} tokens of {@code cols} columns from {@code x[offset]}: token t's codes from
     * {@code codes[t · cols]}, its scales and even sums from {@code [t · cols / 32]}.
     */
    void quantizeTokens(float[] x, int offset, int cols, int count) {
        int blocks = cols / BLOCK;
        long need = (long) count * cols;
        if (codes.length < need) codes = new short[Math.toIntExact(need)];
        if (scales.length < count * blocks) {
            scales = new float[count * blocks];
            evenSums = new short[count * blocks];
        }
        for (int b = 0; b < count * blocks; b++) quantizeBlock(x, offset + b * BLOCK, codes, b * BLOCK, scales, evenSums, b);
        this.cols = cols;
        source = null;
        sourceOffset = -1;
    }

    /** Drops the memory of the last input (its contents may change before the next call) and the reference to it. */
    void forget() {
        source = null;
        sourceOffset = -1;
    }

    /** Block {@code b}: the naive reference and the kernels' quantization are this one scalar loop. */
    static void quantizeBlock(float[] x, int from, short[] codes, int codesFrom, float[] scales, short[] evenSums, int b) {
        float amax = 0f;
        for (int j = 0; j < BLOCK; j++) amax = Math.max(amax, Math.abs(x[from + j]));
        float d = amax / 127f;
        int even = 0;
        for (int j = 0; j < BLOCK; j++) {
            int q = amax == 0f ? 0 : roundHalfAway(x[from + j] / d);
            q = Math.max(-127, Math.min(127, q));
            codes[codesFrom + j] = (short) q;
            if ((j & 1) == 0) even += q;
        }
        scales[b] = d;
        evenSums[b] = (short) even;
    }

    /** {@code t} rounded to the nearest integer, halves away from zero (C's {@code roundf}), for |t| < 2^31. */
    static int roundHalfAway(float t) {
        int i = (int) t; // toward zero
        float fraction = t - i; // exact: |t| < 2^24 here or it has no fraction
        if (fraction >= 0.5f) return i + 1;
        if (fraction <= -0.5f) return i - 1;
        return i;
    }
}
