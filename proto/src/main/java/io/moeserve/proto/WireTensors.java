package io.moeserve.proto;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import io.moeserve.proto.expert.v1.WireDType;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;

/**
 * Packs float32 activations into the contract's wire dtypes and back: little-endian, row-major, no per-element
 * framing. F32 is exact; BF16 rounds to nearest even (as torch casts) and halves the bytes; F16 likewise.
 *
 * <p>Encoding wraps the caller's byte array without copying it, so the array must not change until the message
 * has been sent; decoding reads the message's bytes in place through a buffer view.
 */
public final class WireTensors {
    private WireTensors() {}

    /** Bytes per element of a wire dtype. */
    public static int elementBytes(WireDType dtype) {
        return switch (dtype) {
            case WIRE_DTYPE_F32 -> 4;
            case WIRE_DTYPE_BF16, WIRE_DTYPE_F16 -> 2;
            default -> throw new IllegalArgumentException("unsupported wire dtype " + dtype);
        };
    }

    /** Whether the dtype is one this codec packs (not UNSPECIFIED or unknown). */
    public static boolean isSupported(WireDType dtype) {
        return dtype == WireDType.WIRE_DTYPE_F32 || dtype == WireDType.WIRE_DTYPE_BF16 || dtype == WireDType.WIRE_DTYPE_F16;
    }

    /** Packs {@code src[off, off + count)} into {@code scratch} (grown when too small) and wraps it. */
    public static ByteString encode(float[] src, int off, int count, WireDType dtype, byte[] scratch) {
        int bytes = count * elementBytes(dtype);
        byte[] b = scratch != null && scratch.length >= bytes ? scratch : new byte[bytes];
        ByteBuffer buf = ByteBuffer.wrap(b, 0, bytes).order(ByteOrder.LITTLE_ENDIAN);
        switch (dtype) {
            case WIRE_DTYPE_F32 -> buf.asFloatBuffer().put(src, off, count);
            case WIRE_DTYPE_BF16 -> {
                ShortBuffer s = buf.asShortBuffer();
                for (int i = 0; i < count; i++) s.put(i, floatToBf16(src[off + i]));
            }
            case WIRE_DTYPE_F16 -> {
                ShortBuffer s = buf.asShortBuffer();
                for (int i = 0; i < count; i++) s.put(i, Float.floatToFloat16(src[off + i]));
            }
            default -> throw new IllegalArgumentException("unsupported wire dtype " + dtype);
        }
        return UnsafeByteOperations.unsafeWrap(b, 0, bytes);
    }

    /** Packs into a new array. */
    public static ByteString encode(float[] src, int off, int count, WireDType dtype) {
        return encode(src, off, count, dtype, null);
    }

    /**
     * Unpacks {@code count} elements into {@code dst[off, off + count)}.
     *
     * @throws IllegalArgumentException when the bytes are not exactly {@code count} elements of {@code dtype}
     */
    public static void decode(ByteString bytes, WireDType dtype, float[] dst, int off, int count) {
        long expected = (long) count * elementBytes(dtype);
        if (bytes.size() != expected) {
            throw new IllegalArgumentException("tensor has " + bytes.size() + " bytes, expected " + expected + " ("
                    + count + " elements of " + dtype + ")");
        }
        ByteBuffer buf = bytes.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        switch (dtype) {
            case WIRE_DTYPE_F32 -> {
                FloatBuffer f = buf.asFloatBuffer();
                f.get(dst, off, count);
            }
            case WIRE_DTYPE_BF16 -> {
                ShortBuffer s = buf.asShortBuffer();
                for (int i = 0; i < count; i++) dst[off + i] = Float.intBitsToFloat((s.get(i) & 0xffff) << 16);
            }
            case WIRE_DTYPE_F16 -> {
                ShortBuffer s = buf.asShortBuffer();
                for (int i = 0; i < count; i++) dst[off + i] = Float.float16ToFloat(s.get(i));
            }
            default -> throw new IllegalArgumentException("unsupported wire dtype " + dtype);
        }
    }

    /** Round-to-nearest-even float32 → bfloat16 bits; NaN stays a (quiet) NaN. */
    static short floatToBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) return (short) ((bits >>> 16) | 0x0040);
        return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
    }
}
