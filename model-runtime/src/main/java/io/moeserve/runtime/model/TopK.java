package io.moeserve.runtime.model;

/**
 * The selection and weighting steps gates share. Selection is a k-pass argmax over at most a few hundred experts
 * (k ≤ 8): ties go to the lower id, results come in descending score. Nothing allocates.
 */
public final class TopK {
    private TopK() {}

    /** k-pass argmax over {@code s[off, off + n)}: ids relative to off, descending score, ties to the lower id. */
    public static void select(float[] s, int off, int n, int k, int[] out, int outOff) {
        for (int j = 0; j < k; j++) {
            int best = -1;
            float bestScore = Float.NEGATIVE_INFINITY;
            for (int i = 0; i < n; i++) {
                float v = s[off + i];
                if ((best < 0 || v > bestScore) && !taken(out, outOff, j, i)) {
                    best = i;
                    bestScore = v;
                }
            }
            out[outOff + j] = best;
        }
    }

    private static boolean taken(int[] out, int outOff, int count, int id) {
        for (int j = 0; j < count; j++) if (out[outOff + j] == id) return true;
        return false;
    }

    /** {@code w[off, off + k) /= (Σ w + epsilon)}. */
    public static void normalise(float[] w, int off, int k, float epsilon) {
        float sum = 0f;
        for (int j = 0; j < k; j++) sum += w[off + j];
        sum += epsilon;
        for (int j = 0; j < k; j++) w[off + j] /= sum;
    }

    /** {@code w[off, off + k) *= factor}. */
    public static void scale(float[] w, int off, int k, float factor) {
        if (factor == 1f) return;
        for (int j = 0; j < k; j++) w[off + j] *= factor;
    }
}
