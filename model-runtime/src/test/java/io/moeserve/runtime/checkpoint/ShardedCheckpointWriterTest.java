package io.moeserve.runtime.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.tensor.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ShardedCheckpointWriterTest {

    @TempDir
    Path dir;

    /** A tensor of {@code elements} F32 values (4 bytes each). */
    private static TensorSpec f32(String name, int elements) {
        return TensorSpec.ofFloats(name, DType.F32, new long[] {elements}, new float[elements]);
    }

    @Test
    void writesOneFileWhenEverythingFits() throws IOException {
        List<Path> written = ShardedCheckpointWriter.write(dir, List.of(f32("a", 4), f32("b", 4)), 32);
        assertEquals(List.of(dir.resolve("model.safetensors")), written);
        assertEquals(List.of("model.safetensors"), listing());
    }

    @Test
    void shardsGreedilyInNameOrderAndWritesTheIndexAsTransformersDoes() throws IOException {
        // Limit 40 bytes: [a 16 + b 16] [c 48, alone because it exceeds the limit] [d 8 + e\"x 4].
        List<TensorSpec> tensors = List.of(f32("e\"x", 1), f32("c", 12), f32("a", 4), f32("d", 2), f32("b", 4));
        List<Path> written = ShardedCheckpointWriter.write(dir, tensors, 40);
        assertEquals(List.of(dir.resolve("model-00001-of-00003.safetensors"),
                dir.resolve("model-00002-of-00003.safetensors"), dir.resolve("model-00003-of-00003.safetensors"),
                dir.resolve("model.safetensors.index.json")), written);
        String expected = """
                {
                  "metadata": {
                    "total_size": 92
                  },
                  "weight_map": {
                    "a": "model-00001-of-00003.safetensors",
                    "b": "model-00001-of-00003.safetensors",
                    "c": "model-00002-of-00003.safetensors",
                    "d": "model-00003-of-00003.safetensors",
                    "e\\"x": "model-00003-of-00003.safetensors"
                  }
                }
                """;
        assertEquals(expected, Files.readString(dir.resolve("model.safetensors.index.json")));
        try (SafetensorsFile s = SafetensorsFile.open(written.get(1))) {
            assertEquals(List.of("c"), List.copyOf(s.tensorNames()));
        }
    }

    @Test
    void forcedShardingOfATinyModel() throws IOException {
        ShardedCheckpointWriter.write(dir, List.of(f32("a", 1), f32("é", 1)), 1 << 20, true);
        assertEquals(List.of("model-00001-of-00001.safetensors", "model.safetensors.index.json"), listing());
        String index = Files.readString(dir.resolve("model.safetensors.index.json"));
        // Python's json.dumps escapes non-ASCII by default.
        assertTrue(index.contains("\"\\u00e9\": \"model-00001-of-00001.safetensors\"\n"), index);
    }

    @Test
    void removesWeightFilesOfAnEarlierSaveOnly() throws IOException {
        ShardedCheckpointWriter.write(dir, List.of(f32("a", 4), f32("b", 4)), 16);
        Files.writeString(dir.resolve("config.json"), "{}");
        ShardedCheckpointWriter.write(dir, List.of(f32("a", 4)), 1024);
        assertEquals(List.of("config.json", "model.safetensors"), listing());
        assertFalse(Files.exists(dir.resolve("model.safetensors.index.json")));
    }

    @Test
    void rejectsNonPositiveLimit() {
        assertThrows(IllegalArgumentException.class, () -> ShardedCheckpointWriter.write(dir, List.of(), 0));
    }

    private List<String> listing() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }
}
