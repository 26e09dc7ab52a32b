package io.moeserve.runtime.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

/**
 * {@link VectorOps#exp} against {@code Math.exp} (accuracy, the range ends, NaN) and against itself as the JIT warms
 * up, and the vector SwiGLU against its formula in double precision, whole vectors and a masked tail alike.
 */
class VectorOpsTest {

    @Test
    void expIsWithinTwoUlpOfMathExpOverTheNormalRange() {
        float[] x = new float[Simd.LANES];
        float[] e = new float[Simd.LANES];
        Random random = new Random(3);
        float worst = 0;
        for (int round = 0; round < 20_000; round++) {
            for (int i = 0; i < x.length; i++) x[i] = (float) (random.nextDouble() * 175.7 - 87.33);
            VectorOps.exp(FloatVector.fromArray(Simd.FLOATS, x, 0)).intoArray(e, 0);
            for (int i = 0; i < x.length; i++) {
                double expected = Math.exp(x[i]);
                float ulps = (float) (Math.abs(e[i] - expected) / Math.ulp((float) expected));
                worst = Math.max(worst, ulps);
            }
        }
        assertTrue(worst <= 2, "worst error " + worst + " ulp");
    }

    @Test
    void expAtTheEndsOfTheRange() {
        float[] x = new float[Simd.LANES];
        float[] cases = {0f, -0f, 1f, -1f, Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY, Float.NaN, -87.4f, -1000f,
            88.5f, 1000f, -87.3f, 88.3f, 0x1p-30f, -0x1p-30f, 0.34657359f};
        float[] expected = new float[cases.length];
        for (int i = 0; i < cases.length; i++) {
            float c = cases[i];
            expected[i] = c < -87.33654f ? 0f : c > 88.37626f ? Float.POSITIVE_INFINITY : (float) Math.exp(c);
        }
        for (int from = 0; from < cases.length; from += x.length) {
            Arrays.fill(x, 0f);
            int n = Math.min(x.length, cases.length - from);
            System.arraycopy(cases, from, x, 0, n);
            float[] e = new float[x.length];
            VectorOps.exp(FloatVector.fromArray(Simd.FLOATS, x, 0)).intoArray(e, 0);
            for (int i = 0; i < n; i++) {
                float want = expected[from + i];
                float got = e[i];
                if (Float.isNaN(want) || Float.isInfinite(want) || want == 0) {
                    assertEquals(want, got, 0f, "exp(" + cases[from + i] + ")");
                } else {
                    assertTrue(Math.abs(got - want) <= 2 * Math.ulp(want), "exp(" + cases[from + i] + ") = " + got + ", want " + want);
                }
            }
        }
    }

    @Test
    void expGivesTheSameBitsInEveryJitTier() {
        float[] x = new float[Simd.LANES];
        Random random = new Random(9);
        for (int i = 0; i < x.length; i++) x[i] = (float) (random.nextGaussian() * 30);
        float[] first = new float[x.length];
        VectorOps.exp(FloatVector.fromArray(Simd.FLOATS, x, 0)).intoArray(first, 0);
        float[] again = new float[x.length];
        // Long enough for C2 to compile exp and this loop (the first call above ran interpreted).
        for (int round = 0; round < 200_000; round++) VectorOps.exp(FloatVector.fromArray(Simd.FLOATS, x, 0)).intoArray(again, 0);
        assertEquals(Arrays.toString(first), Arrays.toString(again));
    }

    @Test
    void swigluMatchesItsFormulaAtEveryLengthAndOffset() {
        Random random = new Random(4);
        for (int n : new int[] {1, 3, Simd.LANES - 1, Simd.LANES, Simd.LANES + 5, 4 * Simd.LANES, 100}) {
            float[] gate = new float[n + 7];
            float[] up = new float[n + 9];
            for (int i = 0; i < gate.length; i++) gate[i] = (float) (random.nextGaussian() * 4);
            for (int i = 0; i < up.length; i++) up[i] = (float) random.nextGaussian();
            gate[3] = -200f;
            gate[4] = 200f;
            float[] before = gate.clone();
            VectorOps.swiglu(gate, 2, up, 5, n);
            for (int i = 0; i < gate.length; i++) {
                if (i < 2 || i >= n + 2) {
                    assertEquals(before[i], gate[i], 0f, "element " + i + " outside the row changed");
                    continue;
                }
                double g = before[i];
                double want = g / (1 + Math.exp(-g)) * up[i + 3];
                assertTrue(Math.abs(gate[i] - want) <= 1e-6 * Math.max(1, Math.abs(want)), "n " + n + " element " + i + ": " + gate[i]
                        + " vs " + want);
            }
        }
    }

    @Test
    void swigluGivesAnElementTheSameBitsWhereverItSits() {
        Random random = new Random(8);
        int n = 3 * Simd.LANES + 3;
        float[] gate = new float[n];
        float[] up = new float[n];
        for (int i = 0; i < n; i++) {
            gate[i] = (float) (random.nextGaussian() * 5);
            up[i] = (float) random.nextGaussian();
        }
        float[] whole = gate.clone();
        VectorOps.swiglu(whole, 0, up, 0, n);
        // Split as the kernels split rows between threads: every piece ends in its own partial vector.
        for (int split = 1; split < n; split += 5) {
            float[] pieces = gate.clone();
            VectorOps.swiglu(pieces, 0, up, 0, split);
            VectorOps.swiglu(pieces, split, up, split, n - split);
            assertEquals(Arrays.toString(whole), Arrays.toString(pieces), "split at " + split);
        }
    }
}
