package io.moeserve.runtime.quantize;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The MXFP4 quantizer against the rule it follows (transformers' {@code quantize_to_mxfp4} through triton_kernels'
 * {@code downcast_to_mxfp}): its scale choice, its rounding (nearest, ties away from zero, checked against every
 * candidate and against the reference's bit arithmetic written out again here), and the round trips.
 */
class Mxfp4Test {

    private static final float[] FP4 = {0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f};

    @Test
    void valuesTheFormatHoldsComeBackUnchanged() {
        Random random = new Random(1);
        int rows = 7, cols = 96;
        byte[] blocks = new byte[rows * cols / 2];
        byte[] scales = new byte[rows * cols / 32];
        random.nextBytes(blocks);
        // Scales 1..252: 0 stands for 2^-127, below the rule's smallest scale; above 252, 6 · 2^(e-127) overflows.
        for (int i = 0; i < scales.length; i++) scales[i] = (byte) (1 + random.nextInt(252));
        scales[0] = 1;
        scales[1] = (byte) 252;
        float[] w = Mxfp4.dequantize(blocks, scales, rows, cols);
        Mxfp4.Quantized q = Mxfp4.quantize(w, rows, cols);
        float[] back = Mxfp4.dequantize(q.blocks(), q.scales(), rows, cols);
        for (int i = 0; i < w.length; i++) {
            assertEquals(Float.floatToIntBits(w[i]), Float.floatToIntBits(back[i]), "weight " + i);
        }
        // An all-zero group keeps its signs and gets scale byte 0.
        float[] zeros = new float[32];
        zeros[3] = -0f;
        Mxfp4.Quantized z = Mxfp4.quantize(zeros, 1, 32);
        assertEquals(0, z.scales()[0]);
        assertEquals(0x80, z.blocks()[1] & 0xff, "-0 in the high nibble of byte 1 is code 8");
    }

    @Test
    void eachWeightGoesToTheNearestValueOfItsGroupsGridTiesAwayFromZero() {
        Random random = new Random(2);
        int rows = 16, cols = 256;
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            // Magnitudes over many octaves, so groups get very different scales.
            w[i] = (float) (random.nextGaussian() * Math.pow(2, (i / 32) % 40 - 20));
        }
        Mxfp4.Quantized q = Mxfp4.quantize(w, rows, cols);
        float[] back = Mxfp4.dequantize(q.blocks(), q.scales(), rows, cols);
        double err = 0, norm = 0;
        for (int g = 0; g < rows * cols / 32; g++) {
            float amax = 0;
            for (int i = 32 * g; i < 32 * g + 32; i++) amax = Math.max(amax, Math.abs(w[i]));
            // The rule's scale: amax / 6 rounded up to a power of two (all normal floats here).
            float d = amax / 6f;
            float scale = Math.scalb(1f, Math.getExponent(d));
            if (scale < d) scale *= 2;
            assertEquals(Math.getExponent(scale) + 127, q.scales()[g] & 0xff, "group " + g);
            for (int i = 32 * g; i < 32 * g + 32; i++) {
                float best = nearest(w[i] / scale) * scale;
                assertEquals(Float.floatToIntBits(best), Float.floatToIntBits(back[i]), "weight " + i + " = " + w[i]);
                assertTrue(Math.abs(back[i] - w[i]) <= scale, "within the largest half-step");
                err += (back[i] - w[i]) * (double) (back[i] - w[i]);
                norm += w[i] * (double) w[i];
            }
        }
        // E2M1 in groups of 32: about 10% relative RMS error on Gaussian weights.
        assertTrue(Math.sqrt(err / norm) < 0.15, "relative RMS error " + Math.sqrt(err / norm));
    }

    /** The candidate nearest q among ±{0, 0.5, ..., 6}, the larger magnitude on a tie; saturating. */
    private static float nearest(float q) {
        float a = Math.abs(q), best = 0;
        for (float v : FP4) if (Math.abs(a - v) <= Math.abs(a - best)) best = v;
        return Math.copySign(best, q);
    }

    @Test
    void scalesAndTiesFollowTheReference() {
        // Group max 6 → scale 1 (byte 127), so q = w: the ties of the grid round away from zero.
        float[] w = new float[32];
        float[] ties = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5f, -0.25f, -2.5f, -5f, 0.2f, -0.1f, 5.9f};
        int[] codes = {1, 2, 3, 4, 5, 6, 7, 9, 13, 15, 0, 8, 7};
        w[0] = 6f;
        System.arraycopy(ties, 0, w, 1, ties.length);
        Mxfp4.Quantized q = Mxfp4.quantize(w, 1, 32);
        assertEquals(127, q.scales()[0] & 0xff);
        for (int i = 0; i < ties.length; i++) {
            int b = q.blocks()[(i + 1) / 2];
            assertEquals(codes[i], (i + 1) % 2 == 0 ? b & 0xf : (b >>> 4) & 0xf, "q = " + ties[i]);
        }
        assertEquals(128, scaleByte(7f), "7 / 6 rounds up to 2");
        assertEquals(126, scaleByte(3f), "3 / 6 is exactly 0.5");
        assertEquals(127 + 126, scaleByte(Float.MAX_VALUE), "the largest float: 2^126");
        assertEquals(1, scaleByte(1e-40f), "a subnormal amax / 6 rounds up to 2^-126");
        assertEquals(0, scaleByte(0f), "an all-zero group");
    }

    private static int scaleByte(float amax) {
        float[] w = new float[32];
        w[5] = -amax;
        return Mxfp4.quantize(w, 1, 32).scales()[0] & 0xff;
    }

    /** The reference's float-to-E2M1 arithmetic (downcast_to_mxfp_torch), transcribed on int bits. */
    private static int referenceE2m1(float q) {
        int bits = Float.floatToRawIntBits(q);
        int sign = bits & 0x8000_0000;
        int exponent = (bits >>> 23) & 0xff;
        int mantissa = bits & 0x7f_ffff;
        if (exponent < 127) {
            int shift = 127 - exponent - 1;
            mantissa = shift >= 32 ? 0 : (0x40_0000 | (mantissa >>> 1)) >>> shift;
        }
        exponent = Math.max(exponent, 126) - 126;
        int e2m1 = Math.min((((exponent << 2) | (mantissa >>> 21)) + 1) >>> 1, 7);
        return (sign >>> 28) | e2m1;
    }

    @Test
    void roundingIsTheReferencesBitArithmetic() {
        Random random = new Random(3);
        for (int i = 0; i < 200_000; i++) {
            float q = switch (i % 3) {
                case 0 -> (random.nextFloat() * 2 - 1) * 7f;
                case 1 -> (float) (random.nextGaussian() * Math.pow(2, random.nextInt(20) - 12));
                default -> Math.scalb(random.nextBoolean() ? random.nextFloat() : -random.nextFloat(), random.nextInt(40) - 30);
            };
            assertEquals(referenceE2m1(q), Mxfp4.e2m1(q), "q = " + q);
        }
        for (float t = 0; t <= 8; t += 0.125f) {
            for (float q : new float[] {t, -t, Math.nextUp(t), Math.nextDown(t), -Math.nextDown(t)}) {
                assertEquals(referenceE2m1(q), Mxfp4.e2m1(q), "q = " + q);
            }
        }
        assertEquals(referenceE2m1(Float.MIN_VALUE), Mxfp4.e2m1(Float.MIN_VALUE));
        assertEquals(8, Mxfp4.e2m1(-0f));
    }

    @Test
    void refusesWhatTheFormatCannotHold() {
        assertThrows(IllegalArgumentException.class, () -> Mxfp4.quantize(new float[48], 1, 48), "48 columns");
        assertThrows(IllegalArgumentException.class, () -> Mxfp4.quantize(new float[64], 1, 32), "wrong length");
        float[] nan = new float[32];
        nan[7] = Float.NaN;
        assertThrows(IllegalArgumentException.class, () -> Mxfp4.quantize(nan, 1, 32), "NaN");
        float[] inf = new float[32];
        inf[0] = Float.NEGATIVE_INFINITY;
        assertThrows(IllegalArgumentException.class, () -> Mxfp4.quantize(inf, 1, 32), "infinity");
        assertThrows(IllegalArgumentException.class, () -> Mxfp4.dequantize(new byte[16], new byte[2], 1, 32), "scales");
    }
}
