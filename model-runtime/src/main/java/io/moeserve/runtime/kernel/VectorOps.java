package io.moeserve.runtime.kernel;

/**
 * Element-wise model math on float32 rows: RMSNorm, softmax, SwiGLU, rotary embedding. These are O(width) per
 * token, a rounding error next to the matrix products, so they are written as plain loops the JIT vectorises.
 */
public final class VectorOps {
    private VectorOps() {}

    /** out[i] = w[i] · x[i] / sqrt(mean(x²) + eps), over one row of length n. */
    public static void rmsNorm(float[] x, int xOff, float[] w, float eps, float[] out, int outOff, int n) {
        double ss = 0;
        for (int i = 0; i < n; i++) {
            float v = x[xOff + i];
            ss += v * v;
        }
        float inv = (float) (1.0 / Math.sqrt(ss / n + eps));
        for (int i = 0; i < n; i++) out[outOff + i] = w[i] * (x[xOff + i] * inv);
    }

    /** In-place softmax over a[off, off + n). */
    public static void softmax(float[] a, int off, int n) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) max = Math.max(max, a[off + i]);
        double sum = 0;
        for (int i = 0; i < n; i++) {
            float e = (float) Math.exp(a[off + i] - max);
            a[off + i] = e;
            sum += e;
        }
        float inv = (float) (1.0 / sum);
        for (int i = 0; i < n; i++) a[off + i] *= inv;
    }

    public static float silu(float x) {
        return x / (1f + (float) Math.exp(-x));
    }

    public static float sigmoid(float x) {
        return 1f / (1f + (float) Math.exp(-x));
    }

    /** gate[i] = silu(gate[i]) · up[i], in place in gate. */
    public static void swiglu(float[] gate, int gateOff, float[] up, int upOff, int n) {
        for (int i = 0; i < n; i++) gate[gateOff + i] = silu(gate[gateOff + i]) * up[upOff + i];
    }

    /** y[yOff + i] += a · x[xOff + i]. */
    public static void axpy(float a, float[] x, int xOff, float[] y, int yOff, int n) {
        for (int i = 0; i < n; i++) y[yOff + i] += a * x[xOff + i];
    }

    public static void add(float[] x, int xOff, float[] y, int yOff, int n) {
        for (int i = 0; i < n; i++) y[yOff + i] += x[xOff + i];
    }

    public static void addBias(float[] y, int rows, int width, float[] bias) {
        for (int r = 0; r < rows; r++) {
            int off = r * width;
            for (int i = 0; i < width; i++) y[off + i] += bias[i];
        }
    }

    public static float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        float s = 0f;
        for (int i = 0; i < n; i++) s += a[aOff + i] * b[bOff + i];
        return s;
    }

    /**
     * Rotates one head in place by the angles of one position. {@code cos}/{@code sin} hold rotaryDim/2 values for
     * that position (already multiplied by the attention factor). Half-split pairs (i, i + d/2), or adjacent pairs
     * (2i, 2i + 1) when interleaved.
     */
    public static void rope(float[] x, int off, int rotaryDim, boolean interleaved, float[] cos, float[] sin, int csOff) {
        int half = rotaryDim / 2;
        if (interleaved) {
            for (int i = 0; i < half; i++) {
                float a = x[off + 2 * i];
                float b = x[off + 2 * i + 1];
                float c = cos[csOff + i];
                float s = sin[csOff + i];
                x[off + 2 * i] = a * c - b * s;
                x[off + 2 * i + 1] = b * c + a * s;
            }
        } else {
            for (int i = 0; i < half; i++) {
                float a = x[off + i];
                float b = x[off + i + half];
                float c = cos[csOff + i];
                float s = sin[csOff + i];
                x[off + i] = a * c - b * s;
                x[off + i + half] = b * c + a * s;
            }
        }
    }
}
