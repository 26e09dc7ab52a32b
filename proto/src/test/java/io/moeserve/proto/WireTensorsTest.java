package io.moeserve.proto;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.moeserve.proto.expert.v1.WireDType;
import java.util.Random;
import org.junit.jupiter.api.Test;

class WireTensorsTest {
    private static float[] random(int n, long seed) {
        Random r = new Random(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (r.nextGaussian() * Math.pow(10, r.nextInt(7) - 3));
        return v;
    }

    @Test
    void f32IsExactAndLittleEndian() {
        float[] v = random(1000, 1);
        ByteString b = WireTensors.encode(v, 0, v.length, WireDType.WIRE_DTYPE_F32);
        assertEquals(4000, b.size());
        int first = Float.floatToRawIntBits(v[0]);
        assertEquals((byte) first, b.byteAt(0), "least significant byte first");
        float[] back = new float[1002];
        WireTensors.decode(b, WireDType.WIRE_DTYPE_F32, back, 2, 1000);
        for (int i = 0; i < 1000; i++) assertEquals(Float.floatToRawIntBits(v[i]), Float.floatToRawIntBits(back[i + 2]));
    }

    @Test
    void halfPrecisionRoundsToNearest() {
        float[] v = random(1000, 2);
        for (WireDType d : new WireDType[] {WireDType.WIRE_DTYPE_BF16, WireDType.WIRE_DTYPE_F16}) {
            ByteString b = WireTensors.encode(v, 0, v.length, d);
            assertEquals(2000, b.size());
            float[] back = new float[1000];
            WireTensors.decode(b, d, back, 0, 1000);
            float rel = d == WireDType.WIRE_DTYPE_BF16 ? 1f / 256 : 1f / 2048;
            for (int i = 0; i < 1000; i++) {
                if (d == WireDType.WIRE_DTYPE_F16 && Math.abs(v[i]) < 1e-4f) continue; // F16 subnormals
                if (d == WireDType.WIRE_DTYPE_F16 && Math.abs(v[i]) > 65504f) continue;
                assertEquals(v[i], back[i], Math.abs(v[i]) * rel, d + " element " + i);
            }
        }
        // Ties go to even: 1 + 2^-8 lies halfway between two bf16 values and rounds down to 1.
        assertEquals((short) 0x3f80, WireTensors.floatToBf16(1f + 0x1p-8f));
        assertEquals((short) 0x3f82, WireTensors.floatToBf16(1f + 0x3p-8f));
        assertTrue(Float.isNaN(Float.intBitsToFloat(WireTensors.floatToBf16(Float.NaN) << 16)));
    }

    @Test
    void wrongSizeIsAnError() {
        ByteString b = WireTensors.encode(new float[3], 0, 3, WireDType.WIRE_DTYPE_F32);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> WireTensors.decode(b, WireDType.WIRE_DTYPE_F32, new float[4], 0, 4));
        assertTrue(e.getMessage().contains("12 bytes, expected 16"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> WireTensors.elementBytes(WireDType.WIRE_DTYPE_UNSPECIFIED));
    }

    @Test
    void scratchIsReusedWhenLargeEnough() {
        byte[] scratch = new byte[64];
        ByteString b = WireTensors.encode(new float[] {1f, 2f}, 0, 2, WireDType.WIRE_DTYPE_F32, scratch);
        assertEquals(8, b.size());
        assertEquals(b.byteAt(3), scratch[3]);
        float[] back = new float[2];
        WireTensors.decode(b, WireDType.WIRE_DTYPE_F32, back, 0, 2);
        assertArrayEquals(new float[] {1f, 2f}, back);
    }
}
