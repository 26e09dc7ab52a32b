package io.moeserve.runtime.expert;

/**
 * gpt-oss's expert activation ({@code GptOssExperts.forward}): from the interleaved gate_up projection plus its
 * bias, gate = min(g, limit), up = clamp(u, −limit, limit), h = (up + 1) · gate · σ(α · gate); the down projection
 * then adds its own bias. α is the constant 1.702 of transformers' code (config.json has no key for it).
 *
 * @param gateUpBias [2I], interleaved like the rows of gate_up
 * @param downBias   [H]
 * @param limit      swiglu_limit
 */
public record ClampedGlu(float[] gateUpBias, float[] downBias, float limit) {
    /** transformers' {@code GptOssExperts.alpha}. */
    public static final float ALPHA = 1.702f;

    /**
     * Reads {@code rows} rows of 2I gate_up outputs from {@code gateUp} (row stride 2I) and writes the activations,
     * I per row, to {@code h} (row stride I).
     */
    public void activate(float[] gateUp, int guOff, float[] h, int hOff, int rows, int width) {
        for (int r = 0; r < rows; r++) {
            int g0 = guOff + r * 2 * width;
            int h0 = hOff + r * width;
            for (int j = 0; j < width; j++) {
                float gate = Math.min(gateUp[g0 + 2 * j] + gateUpBias[2 * j], limit);
                float up = Math.max(-limit, Math.min(limit, gateUp[g0 + 2 * j + 1] + gateUpBias[2 * j + 1]));
                float glu = gate / (1f + (float) Math.exp(-ALPHA * gate));
                h[h0 + j] = (up + 1f) * glu;
            }
        }
    }
}
