package io.moeserve.runtime.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Tensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsWriterTest {

    @TempDir
    Path dir;

    /** Values exactly representable in F32, BF16 and F16, so every dtype must round-trip them bit for bit. */
    private static final float[] VALUES = {1.5f, -2.25f, 0.0078125f, 1024f, -0f, 3.0f};

    @Test
    void roundTripsEveryDtype() {
        Path file = dir.resolve("rt.safetensors");
        SafetensorsWriter.write(file, List.of(
                TensorSpec.ofFloats("f32", DType.F32, new long[] {2, 3}, VALUES),
                TensorSpec.ofFloats("bf16", DType.BF16, new long[] {3, 2}, VALUES),
                TensorSpec.ofFloats("f16", DType.F16, new long[] {6}, VALUES),
                TensorSpec.ofFloats("scalar", DType.F32, new long[0], new float[] {7f})));
        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            assertEquals(Map.of("format", "pt"), st.metadata());
            assertEquals(List.of("bf16", "f16", "f32", "scalar"), List.copyOf(st.tensorNames()));
            for (String name : List.of("f32", "bf16", "f16")) {
                Tensor t = st.tensor(name);
                assertArrayEquals(VALUES, t.toFloatArray(), name);
                assertEquals(DType.valueOf(name.toUpperCase()), t.dtype());
            }
            assertArrayEquals(new long[] {3, 2}, st.tensor("bf16").shape());
            assertEquals(7f, st.tensor("scalar").getFloat(0));
        }
    }

    @Test
    void writesTheReferenceLayoutExactly() throws IOException {
        Path file = dir.resolve("fmt.safetensors");
        SafetensorsWriter.write(file, List.of(
                TensorSpec.ofFloats("z.weight", DType.F32, new long[] {2}, new float[] {1f, 2f}),
                TensorSpec.ofFloats("a.bias", DType.BF16, new long[] {3}, new float[] {1f, -1f, 0.5f})),
                Map.of("source", "tests"));

        // Parse the file independently of SafetensorsFile: u64 length, JSON, data.
        byte[] bytes = Files.readAllBytes(file);
        ByteBuffer buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        long n = buf.getLong(0);
        assertEquals(0, n % 8, "header must be padded to a multiple of 8");
        String header = new String(bytes, 8, (int) n, StandardCharsets.UTF_8);
        String json = "{\"__metadata__\":{\"format\":\"pt\",\"source\":\"tests\"},"
                + "\"a.bias\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,6]},"
                + "\"z.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[6,14]}}";
        assertEquals(json + " ".repeat((int) n - json.length()), header);
        assertEquals(7, n - json.length(), "169 bytes of JSON padded to 176");

        JsonNode root = new ObjectMapper().readTree(header);
        Iterator<String> keys = root.fieldNames();
        assertEquals("__metadata__", keys.next());
        long expectedBegin = 0;
        List<String> names = new ArrayList<>();
        while (keys.hasNext()) {
            String name = keys.next();
            names.add(name);
            JsonNode offsets = root.get(name).get("data_offsets");
            assertEquals(expectedBegin, offsets.get(0).longValue(), "data must be contiguous in header order");
            expectedBegin = offsets.get(1).longValue();
        }
        assertEquals(List.of("a.bias", "z.weight"), names);
        assertEquals(8 + n + expectedBegin, bytes.length, "no bytes after the last tensor");

        int data = 8 + (int) n;
        assertEquals((short) 0x3f80, buf.getShort(data), "bf16 1.0");
        assertEquals((short) 0xbf80, buf.getShort(data + 2), "bf16 -1.0");
        assertEquals((short) 0x3f00, buf.getShort(data + 4), "bf16 0.5");
        assertEquals(1f, buf.getFloat(data + 6));
        assertEquals(2f, buf.getFloat(data + 10));
    }

    @Test
    void headerIsPaddedToEightForEveryJsonLength() throws IOException {
        // Names of 1 to 8 characters give JSON lengths of every residue modulo 8.
        for (int k = 1; k <= 8; k++) {
            Path file = dir.resolve("pad" + k + ".safetensors");
            SafetensorsWriter.write(file, List.of(TensorSpec.ofFloats("w".repeat(k), DType.F16, new long[] {1},
                    new float[] {1f})));
            byte[] bytes = Files.readAllBytes(file);
            long n = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(0);
            String header = new String(bytes, 8, (int) n, StandardCharsets.UTF_8);
            String json = header.stripTrailing();
            assertEquals(0, n % 8, header);
            assertTrue(n - json.length() < 8, header);
            assertTrue(json.endsWith("}"), header);
            assertEquals(8 + n + 2, bytes.length);
            assertEquals((short) 0x3c00, ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getShort(8 + (int) n),
                    "f16 1.0 right after the padded header");
        }
    }

    @Test
    void callerMetadataMayOverrideFormat() {
        Path file = dir.resolve("meta.safetensors");
        SafetensorsWriter.write(file, List.of(), Map.of("format", "np"));
        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            assertEquals(Map.of("format", "np"), st.metadata());
            assertTrue(st.tensorNames().isEmpty());
        }
    }

    @Test
    void copyOfReproducesBytes() {
        Path src = dir.resolve("src.safetensors");
        SafetensorsWriter.write(src, List.of(TensorSpec.ofFloats("w", DType.F16, new long[] {2, 2},
                new float[] {0.5f, -1f, 2f, 65504f})));
        Path dst = dir.resolve("dst.safetensors");
        try (SafetensorsFile st = SafetensorsFile.open(src)) {
            SafetensorsWriter.write(dst, List.of(TensorSpec.copyOf("renamed", st.tensor("w"))));
        }
        try (SafetensorsFile st = SafetensorsFile.open(dst)) {
            Tensor t = st.tensor("renamed");
            assertArrayEquals(new long[] {2, 2}, t.shape());
            assertArrayEquals(new float[] {0.5f, -1f, 2f, 65504f}, t.toFloatArray());
        }
    }

    @Test
    void failingFillerLeavesNoFile() {
        Path file = dir.resolve("fail.safetensors");
        TensorSpec bad = new TensorSpec("w", DType.F32, new long[] {4}, target -> {
            throw new IllegalStateException("source went away");
        });
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> SafetensorsWriter.write(file, List.of(bad)));
        assertEquals("source went away", e.getMessage());
        assertFalse(Files.exists(file));
    }

    @Test
    void rejectsDuplicateAndReservedNames() {
        Path file = dir.resolve("dup.safetensors");
        TensorSpec a = TensorSpec.ofFloats("a", DType.F32, new long[] {1}, new float[] {1});
        IllegalArgumentException dup = assertThrows(IllegalArgumentException.class,
                () -> SafetensorsWriter.write(file, List.of(a, a)));
        assertTrue(dup.getMessage().contains("tensor a is given twice"), dup.getMessage());
        TensorSpec reserved = TensorSpec.ofFloats("__metadata__", DType.F32, new long[] {1}, new float[] {1});
        assertThrows(IllegalArgumentException.class, () -> SafetensorsWriter.write(file, List.of(reserved)));
        assertFalse(Files.exists(file));
    }

    @Test
    void specChecksValueCountAndIsImmutable() {
        assertThrows(IllegalArgumentException.class,
                () -> TensorSpec.ofFloats("w", DType.F32, new long[] {2, 2}, new float[3]));
        assertThrows(IllegalArgumentException.class,
                () -> TensorSpec.ofFloats("w", DType.F32, new long[] {-1}, new float[0]));
        long[] shape = {2};
        TensorSpec spec = TensorSpec.ofFloats("w", DType.BF16, shape, new float[2]);
        shape[0] = 5;
        spec.shape()[0] = 7;
        assertArrayEquals(new long[] {2}, spec.shape());
        assertEquals(4, spec.byteSize());
    }
}
