package io.moeserve.runtime.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Tensor;
import io.moeserve.runtime.tensor.TensorAccess;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Files beyond 2 GiB, where int-indexed buffers break. They are created sparse (holes cost neither disk nor
 * time), so only the few pages the test writes and reads are real.
 */
class LargeFileTest {

    private static final long TWO_GIB = 1L << 31;
    private static final float[] PROBE = {1.25f, -7.5f, 3.0e8f, Float.MIN_NORMAL};

    @TempDir
    Path dir;

    @Test
    void readsTensorsBeyondTwoGibThroughTheMapping() throws IOException {
        Path file = dir.resolve("big.safetensors");
        // "pad" covers bytes [0, 2^31 + 16) of the data region; "probe" starts past byte 2^31 of the file.
        long padBytes = TWO_GIB + 16;
        long probeBegin = padBytes;
        long probeEnd = probeBegin + 4L * PROBE.length;
        String json = "{\"pad\":{\"dtype\":\"F32\",\"shape\":[" + padBytes / 4 + "],\"data_offsets\":[0," + padBytes
                + "]},\"probe\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[" + probeBegin + ","
                + probeEnd + "]}}";
        byte[] header = json.getBytes(StandardCharsets.UTF_8);
        long dataStart = 8 + header.length;
        long fileSize = dataStart + probeEnd + 300L * 1024 * 1024; // trailing slack: ~2.3 GiB in all
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(fileSize);
            ByteBuffer head = ByteBuffer.allocate(8 + header.length).order(ByteOrder.LITTLE_ENDIAN);
            head.putLong(header.length).put(header);
            raf.write(head.array());
            ByteBuffer probe = ByteBuffer.allocate(4 * PROBE.length).order(ByteOrder.LITTLE_ENDIAN);
            for (float f : PROBE) probe.putFloat(f);
            raf.seek(dataStart + probeBegin);
            raf.write(probe.array());
            // A marker in the last bytes of "pad", so the >2 GiB slice is read at its far end too.
            raf.seek(dataStart + padBytes - 4);
            raf.write(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(42f).array());
        }
        try {
            assertTrue(dataStart + probeBegin > TWO_GIB);
            try (SafetensorsFile st = SafetensorsFile.open(file)) {
                Tensor probe = st.tensor("probe");
                assertArrayEquals(new long[] {2, 2}, probe.shape());
                assertArrayEquals(PROBE, probe.toFloatArray());
                Tensor pad = st.tensor("pad");
                assertEquals(padBytes, pad.data().byteSize());
                assertEquals(42f, pad.getFloat(pad.numElements() - 1));
                assertEquals(0f, pad.getFloat(pad.numElements() / 2));
            }
        } finally {
            Files.deleteIfExists(file);
        }
    }

    @Test
    void writesTensorsBeyondTwoGibThroughTheWritableMapping() throws IOException {
        Path file = dir.resolve("written.safetensors");
        long bigElements = (TWO_GIB + 64) / 2;
        // The filler touches only the last element: the rest of the tensor stays a hole of zeros.
        TensorSpec big = new TensorSpec("a.big", DType.BF16, new long[] {bigElements}, target ->
                TensorAccess.setFloat(target, DType.BF16, bigElements - 1, -0.5f));
        TensorSpec after = TensorSpec.ofFloats("b.after", DType.F32, new long[] {PROBE.length}, PROBE);
        try {
            SafetensorsWriter.write(file, List.of(after, big));
            assertTrue(Files.size(file) > TWO_GIB + 64);
            try (SafetensorsFile st = SafetensorsFile.open(file)) {
                assertArrayEquals(PROBE, st.tensor("b.after").toFloatArray());
                Tensor t = st.tensor("a.big");
                assertEquals(-0.5f, t.getFloat(bigElements - 1));
                assertEquals(0f, t.getFloat(bigElements - 2));
            }
        } finally {
            Files.deleteIfExists(file);
        }
    }
}
