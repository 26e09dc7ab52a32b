package io.moeserve.runtime.kernel;

import static io.moeserve.runtime.kernel.Simd.FLOATS;
import static io.moeserve.runtime.kernel.Simd.LANES;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Element-wise model math on float32 rows: RMSNorm, softmax, SwiGLU, rotary embedding. These are O(width) per
 * token, small next to the matrix products, so most are plain loops the JIT vectorises. SwiGLU is not: its
 * exponential ({@code Math.exp}, tens of nanoseconds) kept the loop scalar and cost a decode step of the benchmark
 * model about a millisecond, so it runs on {@link #exp}.
 */
public final class VectorOps {
    private static final float LOG2E = 1.44269504f;
    /** ln 2 in two parts, the first with few enough bits that n · LN2_HI is exact for every n used. */
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    /** 1.5 · 2^23: added to a float below 2^22 in magnitude, leaves it rounded to an integer in the low mantissa bits. */
    private static final float SHIFTER = 12582912f;
    /** Below this e^x is under the smallest normal float (2^−126): the result is 0. */
    private static final float EXP_LOW = -87.33654f;
    /** Above this 2^n would need the exponent field 255: the result is infinity (Math.exp's threshold is 88.72). */
    private static final float EXP_HIGH = 88.37626f;

    private VectorOps() {}

    /**
     * e^x in every lane, within 2 ulp of {@code Math.exp} where the result is a normal float, 0 below
     * {@value #EXP_LOW}, infinity above {@value #EXP_HIGH}, NaN for NaN.
     *
     * <p>Why not {@code lanewise(VectorOperators.EXP)}: C2 turns it into the vector math library's call but the
     * interpreter and C1 compute it lane by lane with {@code Math.exp}, and the two differ in the last bit, so logits
     * changed as the JIT warmed up (the reproducibility test caught it, as it did for lane sums: see {@link Simd#sum}).
     * This is range reduction and a polynomial in IEEE adds, multiplies and FMAs, which every tier computes alike:
     * x = n·ln 2 + r with n = round(x·log2 e) and |r| ≤ ln 2 / 2, e^r by its Taylor polynomial of degree 7 (truncation
     * error below 10^−8 relative), times 2^n built in the exponent bits.
     */
    public static FloatVector exp(FloatVector x) {
        FloatVector xc = x.max(EXP_LOW).min(EXP_HIGH);
        FloatVector t = xc.fma(LOG2E, SHIFTER);
        FloatVector n = t.sub(SHIFTER);
        // n · LN2_HI is exact (n has at most 8 bits, LN2_HI 9), so the first step rounds once, as an FMA would.
        FloatVector r = xc.sub(n.mul(LN2_HI));
        r = n.fma(FloatVector.broadcast(FLOATS, -LN2_LO), r);
        FloatVector p = r.fma(1f / 5040, 1f / 720);
        p = p.fma(r, FloatVector.broadcast(FLOATS, 1f / 120));
        p = p.fma(r, FloatVector.broadcast(FLOATS, 1f / 24));
        p = p.fma(r, FloatVector.broadcast(FLOATS, 1f / 6));
        p = p.fma(r, FloatVector.broadcast(FLOATS, 0.5f));
        p = p.fma(r, FloatVector.broadcast(FLOATS, 1f));
        p = p.fma(r, FloatVector.broadcast(FLOATS, 1f));
        IntVector bits = t.reinterpretAsInts().sub(0x4B40_0000 - 127).lanewise(VectorOperators.LSHL, 23);
        FloatVector e = p.mul(bits.reinterpretAsFloats());
        e = e.blend(0f, x.compare(VectorOperators.LT, EXP_LOW));
        return e.blend(Float.POSITIVE_INFINITY, x.compare(VectorOperators.GT, EXP_HIGH));
    }

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

    /**
     * gate[i] = silu(gate[i]) · up[i] = gate[i] · up[i] / (1 + e^−gate[i]), in place in gate; whole vectors by
     * {@link #exp}, the last partial one masked, so an element's result does not depend on where it sits.
     */
    public static void swiglu(float[] gate, int gateOff, float[] up, int upOff, int n) {
        int upper = n - n % LANES;
        for (int i = 0; i < upper; i += LANES) {
            FloatVector g = FloatVector.fromArray(FLOATS, gate, gateOff + i);
            FloatVector u = FloatVector.fromArray(FLOATS, up, upOff + i);
            g.mul(u).div(exp(g.neg()).add(1f)).intoArray(gate, gateOff + i);
        }
        if (upper < n) {
            var tail = FLOATS.indexInRange(upper, n);
            FloatVector g = FloatVector.fromArray(FLOATS, gate, gateOff + upper, tail);
            FloatVector u = FloatVector.fromArray(FLOATS, up, upOff + upper, tail);
            g.mul(u).div(exp(g.neg()).add(1f)).intoArray(gate, gateOff + upper, tail);
        }
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
