package io.moeserve.runtime.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Tensor;
import io.moeserve.runtime.tensor.TensorAccess;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

class SafetensorsFileTest {

    @TempDir
    Path dir;

    @Test
    void readsHandWrittenFileWithMetadataGapsAndEmptyTensors() throws IOException {
        // Two F32 values at [0, 8), a gap, one BF16 value at [12, 14), an empty tensor sharing offset 12.
        String header = "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"x\"},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1},"
                + "\"a\":{\"dtype\":\"BF16\",\"shape\":[1,1],\"data_offsets\":[12,14]},"
                + "\"empty\":{\"dtype\":\"F16\",\"shape\":[0,4],\"data_offsets\":[12,12]}}";
        ByteBuffer data = ByteBuffer.allocate(14).order(ByteOrder.LITTLE_ENDIAN);
        data.putFloat(0, 1.5f).putFloat(4, -3.25f).putShort(12, TensorAccess.floatToBf16(0.375f));
        Path file = RawSafetensors.write(dir.resolve("h.safetensors"), header.length(),
                header.getBytes(StandardCharsets.UTF_8), data.array());

        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            assertEquals(file, st.path());
            assertEquals(Map.of("format", "pt", "note", "x"), st.metadata());
            assertEquals(List.of("b", "a", "empty"), List.copyOf(st.tensorNames()));
            Tensor b = st.tensor("b");
            assertEquals(DType.F32, b.dtype());
            assertArrayEquals(new long[] {2}, b.shape());
            assertArrayEquals(new float[] {1.5f, -3.25f}, b.toFloatArray());
            assertEquals(file, b.file());
            Tensor a = st.tensor("a");
            assertArrayEquals(new long[] {1, 1}, a.shape());
            assertEquals(0.375f, a.getFloat(0));
            assertEquals(0, st.tensor("empty").data().byteSize());
            CheckpointException missing = assertThrows(CheckpointException.class, () -> st.tensor("nope"));
            assertEquals("no tensor nope in " + file, missing.getMessage());
        }
    }

    @Test
    void nullMetadataIsNoMetadata() throws IOException {
        Path file = RawSafetensors.write(dir.resolve("m.safetensors"),
                "{\"__metadata__\":null,\"t\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[0,2]}}", 2);
        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            assertTrue(st.metadata().isEmpty());
            assertArrayEquals(new long[0], st.tensor("t").shape());
        }
    }

    @Test
    void tensorsAreViewsThatCloseInvalidates() throws IOException {
        Path file = RawSafetensors.write(dir.resolve("c.safetensors"),
                "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
        SafetensorsFile st = SafetensorsFile.open(file);
        MemorySegment data = st.tensor("t").data();
        assertTrue(data.isMapped(), "tensor data must be a slice of the mapping, not a heap copy");
        assertEquals(0f, data.get(TensorAccess.F32_LE, 0));
        st.close();
        st.close();
        assertThrows(IllegalStateException.class, () -> data.get(TensorAccess.F32_LE, 0));
        assertThrows(IllegalStateException.class, () -> st.tensor("t"));
    }

    @ParameterizedTest
    @ValueSource(strings = {"F8_E5M2", "I64", "U16", "F64", "BOOL", "F8_E8M0"})
    void unsupportedDtypeNamesFileAndTensor(String dtype) throws IOException {
        Path file = RawSafetensors.write(dir.resolve("u.safetensors"),
                "{\"w\":{\"dtype\":\"" + dtype + "\",\"shape\":[16],\"data_offsets\":[0,16]}}", 256);
        CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsFile.open(file));
        assertEquals("tensor w in " + file + " has dtype " + dtype
                + ", which this runtime does not support (supported: F32, BF16, F16, F8_E4M3, I8, U8, I32)", e.getMessage());
    }

    @ParameterizedTest
    @ValueSource(strings = {"XYZ", "bf16", ""})
    void unknownDtypeNamesFileAndTensor(String dtype) throws IOException {
        Path file = RawSafetensors.write(dir.resolve("x.safetensors"),
                "{\"w\":{\"dtype\":\"" + dtype + "\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2);
        CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsFile.open(file));
        assertEquals("tensor w in " + file + " has unknown dtype \"" + dtype
                + "\" (not a safetensors dtype; supported: F32, BF16, F16, F8_E4M3, I8, U8, I32)", e.getMessage());
    }

    @Test
    void truncatedDataRegionSaysHowMuchIsThere() throws IOException {
        Path file = RawSafetensors.write(dir.resolve("t.safetensors"),
                "{\"ok\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        + "\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", 20);
        CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsFile.open(file));
        assertEquals(file + " is truncated: tensor w needs bytes up to 24 of the data region but the file holds"
                + " only 20", e.getMessage());
    }

    @Test
    void overlappingTensorsAreNamed() throws IOException {
        Path file = RawSafetensors.write(dir.resolve("o.safetensors"),
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                        + "\"z\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]},"
                        + "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[4,12]}}", 32);
        CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsFile.open(file));
        assertEquals("tensors a and b in " + file + " overlap: a has data_offsets [0, 8], b has [4, 12]",
                e.getMessage());
    }

    /** Header entries for tensor "w" that must be rejected, with a fragment the message must contain. */
    static Stream<Arguments> badEntries() {
        return Stream.of(
                Arguments.of("{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}",
                        "has shape [2, 3] of F32 (24 bytes) but data_offsets [0, 20] span 20 bytes"),
                Arguments.of("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}",
                        "has data_offsets [8, 4] whose end lies before its begin"),
                Arguments.of("{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}",
                        "\"shape\" must hold non-negative integers, found [-1]"),
                Arguments.of("{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,4]}",
                        "\"shape\" must hold non-negative integers, found [2.5]"),
                Arguments.of("{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}",
                        "\"shape\" must hold non-negative integers"),
                Arguments.of("{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}",
                        "\"shape\" must be an array of non-negative integers, found 2"),
                Arguments.of("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}",
                        "\"data_offsets\" must hold non-negative integers, found [-4,0]"),
                Arguments.of("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]}",
                        "\"data_offsets\" must hold non-negative integers"),
                Arguments.of("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,99999999999999999999]}",
                        "\"data_offsets\" must hold non-negative integers"),
                Arguments.of("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}",
                        "\"data_offsets\" must be [begin, end], found [0, 4, 8]"),
                Arguments.of("{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,4]}",
                        "has shape [4611686018427387904, 4], too large to address"),
                Arguments.of("{\"shape\":[1],\"data_offsets\":[0,4]}", "header entry lacks \"dtype\""),
                Arguments.of("{\"dtype\":\"F32\",\"data_offsets\":[0,4]}", "header entry lacks \"shape\""),
                Arguments.of("{\"dtype\":\"F32\",\"shape\":[1]}", "header entry lacks \"data_offsets\""),
                Arguments.of("{\"dtype\":null,\"shape\":[1],\"data_offsets\":[0,4]}", "header entry lacks \"dtype\""),
                Arguments.of("{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}", "\"dtype\" must be a string"),
                Arguments.of("[1, 2]", "header entry must be a JSON object, found [1,2]"));
    }

    @ParameterizedTest
    @MethodSource("badEntries")
    void badEntryNamesFileAndTensor(String entry, String expected) throws IOException {
        Path file = RawSafetensors.write(dir.resolve("bad.safetensors"), "{\"w\":" + entry + "}", 64);
        CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsFile.open(file));
        String prefix = "tensor w in " + file;
        assertTrue(e.getMessage().startsWith(prefix), e.getMessage());
        assertTrue(e.getMessage().contains(expected), e.getMessage());
    }

    /** Whole headers that are not valid safetensors JSON, with a fragment the message must contain. */
    static Stream<Arguments> badHeaders() {
        return Stream.of(
                Arguments.of("{\"w\": ", "has a malformed safetensors header (invalid JSON"),
                Arguments.of("[]", "has a malformed safetensors header: not a JSON object"),
                Arguments.of("        ", "has a malformed safetensors header: not a JSON object"),
                Arguments.of("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                        + "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "Duplicate field 'w'"),
                Arguments.of("{} {}", "has a malformed safetensors header (invalid JSON"),
                Arguments.of("{\"__metadata__\":[\"pt\"]}", "__metadata__ must be a JSON object of strings"),
                Arguments.of("{\"__metadata__\":{\"format\":1}}",
                        "__metadata__ value for key \"format\" must be a string, found 1"));
    }

    @ParameterizedTest
    @MethodSource("badHeaders")
    void badHeaderNamesFile(String header, String expected) throws IOException {
        Path file = RawSafetensors.write(dir.resolve("bad.safetensors"), header, 8);
        CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsFile.open(file));
        assertTrue(e.getMessage().startsWith(file.toString()), e.getMessage());
        assertTrue(e.getMessage().contains(expected), e.getMessage());
    }

    @Test
    void headerLengthZeroIsNotSafetensors() throws IOException {
        Path file = RawSafetensors.write(dir.resolve("z.safetensors"), 0, new byte[0], new byte[16]);
        CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsFile.open(file));
        assertEquals(file + " is not a safetensors file: its header length 0 is outside 1..100000000",
                e.getMessage());
    }

    @Test
    void hugeHeaderLengthIsNotSafetensors() throws IOException {
        // A PyTorch zip or a GGUF file starts with bytes that read as an absurd length.
        Path file = RawSafetensors.write(dir.resolve("g.safetensors"), 0x0000_0003_4655_4747L, new byte[0],
                new byte[16]);
        CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsFile.open(file));
        assertTrue(e.getMessage().startsWith(file + " is not a safetensors file: its header length"),
                e.getMessage());
        Path negative = RawSafetensors.write(dir.resolve("n.safetensors"), -8, new byte[0], new byte[16]);
        e = assertThrows(CheckpointException.class, () -> SafetensorsFile.open(negative));
        assertTrue(e.getMessage().contains("header length 18446744073709551608 is outside"), e.getMessage());
    }

    @Test
    void headerLongerThanFileIsTruncatedHeader() throws IOException {
        byte[] header = "{\"w\":{}}".getBytes(StandardCharsets.UTF_8);
        Path file = RawSafetensors.write(dir.resolve("h.safetensors"), 1000, header, new byte[0]);
        CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsFile.open(file));
        assertEquals(file + " is not a safetensors file or has a truncated header: the header length says 1000"
                + " bytes but the file holds only 8 after the length", e.getMessage());
    }

    @Test
    void fileShorterThanLengthPrefix() throws IOException {
        Path file = Files.write(dir.resolve("s.safetensors"), new byte[] {1, 2, 3});
        CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsFile.open(file));
        assertEquals(file + " is not a safetensors file: it holds 3 bytes, fewer than the 8-byte header length",
                e.getMessage());
    }

    @Test
    void missingFile() {
        Path file = dir.resolve("absent.safetensors");
        CheckpointException e = assertThrows(CheckpointException.class, () -> SafetensorsFile.open(file));
        assertEquals(file + " does not exist", e.getMessage());
    }
}
