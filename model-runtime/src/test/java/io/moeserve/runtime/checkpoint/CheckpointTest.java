package io.moeserve.runtime.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Tensor;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointTest {

    @TempDir
    Path dir;

    private static final float[] SIX = {1f, -2f, 0.5f, 4f, -0.25f, 8f};

    /** A tiny model: F32 embeddings, BF16 projections, an F16 norm. */
    private static List<TensorSpec> tinyModel() {
        return List.of(
                TensorSpec.ofFloats("embed.weight", DType.F32, new long[] {3, 2}, SIX),
                TensorSpec.ofFloats("layers.0.proj.weight", DType.BF16, new long[] {2, 3}, SIX),
                TensorSpec.ofFloats("layers.1.proj.weight", DType.BF16, new long[] {6}, SIX),
                TensorSpec.ofFloats("norm.weight", DType.F16, new long[] {2}, new float[] {1f, 0.5f}));
    }

    private void checkTinyModel(Checkpoint ckpt) {
        assertEquals(Set.of("embed.weight", "layers.0.proj.weight", "layers.1.proj.weight", "norm.weight"),
                ckpt.names());
        assertArrayEquals(SIX, ckpt.tensor("embed.weight", 3, 2).toFloatArray());
        assertArrayEquals(SIX, ckpt.tensor("layers.0.proj.weight", 2, 3).toFloatArray());
        assertArrayEquals(SIX, ckpt.tensor("layers.1.proj.weight").toFloatArray());
        assertArrayEquals(new float[] {1f, 0.5f}, ckpt.tensor("norm.weight").toFloatArray());
        assertEquals(24 + 12 + 12 + 4, ckpt.totalBytes());
        assertEquals(Map.of(DType.F32, 6L, DType.BF16, 12L, DType.F16, 2L), ckpt.parameterCountByDType());
        assertDoesNotThrow(() -> ckpt.requireAllConsumed(List.of()));
    }

    @Test
    void roundTripsSingleFile() {
        ShardedCheckpointWriter.write(dir, tinyModel(), 1 << 20);
        assertTrue(Files.exists(dir.resolve("model.safetensors")));
        try (Checkpoint ckpt = Checkpoint.open(dir)) {
            assertEquals(dir, ckpt.directory());
            checkTinyModel(ckpt);
        }
    }

    @Test
    void roundTripsShards() {
        List<Path> files = ShardedCheckpointWriter.write(dir, tinyModel(), 24, true);
        assertEquals(4, files.size(), "three shards and the index");
        try (Checkpoint ckpt = Checkpoint.open(dir)) {
            checkTinyModel(ckpt);
            assertEquals(dir.resolve("model-00003-of-00003.safetensors"), ckpt.tensor("norm.weight").file());
        }
    }

    @Test
    void opensShardsThroughARelativeDirectory() {
        ShardedCheckpointWriter.write(dir, tinyModel(), 24);
        Path relative = Path.of("").toAbsolutePath().relativize(dir);
        try (Checkpoint ckpt = Checkpoint.open(relative)) {
            checkTinyModel(ckpt);
        }
    }

    @Test
    void indexTakesPrecedenceAndOtherFilesAreIgnored() throws IOException {
        ShardedCheckpointWriter.write(dir, tinyModel(), 24);
        // Mistral repositories ship a consolidated file beside the transformers shards.
        SafetensorsWriter.write(dir.resolve("consolidated.safetensors"), List.of(
                TensorSpec.ofFloats("tok_embeddings.weight", DType.F32, new long[] {1}, new float[] {1})));
        try (Checkpoint ckpt = Checkpoint.open(dir)) {
            assertFalse(ckpt.contains("tok_embeddings.weight"));
            assertEquals(4, ckpt.names().size());
        }
    }

    @Test
    void consumptionTracking() {
        ShardedCheckpointWriter.write(dir, tinyModel(), 1 << 20);
        try (Checkpoint ckpt = Checkpoint.open(dir)) {
            assertTrue(ckpt.contains("norm.weight"));
            assertEquals(ckpt.names(), ckpt.unconsumed(), "contains() does not consume");
            assertTrue(ckpt.find("absent.bias").isEmpty());
            assertTrue(ckpt.find("norm.weight").isPresent());
            ckpt.tensor("embed.weight");
            assertEquals(Set.of("layers.0.proj.weight", "layers.1.proj.weight"), ckpt.unconsumed());

            CheckpointException e = assertThrows(CheckpointException.class,
                    () -> ckpt.requireAllConsumed(List.of(), "TinyForCausalLM"));
            assertEquals("unexpected tensor(s) in checkpoint " + dir + ":\n"
                    + "  layers.0.proj.weight (in model.safetensors)\n"
                    + "  layers.1.proj.weight (in model.safetensors)\n"
                    + "2 tensor(s) not used by TinyForCausalLM; a wrong architecture, a renamed weight, or weights"
                    + " to add to the ignore list?", e.getMessage());

            e = assertThrows(CheckpointException.class,
                    () -> ckpt.requireAllConsumed(List.of(Pattern.compile("^layers\\.1\\."))));
            assertTrue(e.getMessage().contains("layers.0.proj.weight"), e.getMessage());
            assertFalse(e.getMessage().contains("layers.1.proj.weight"), e.getMessage());

            assertDoesNotThrow(() -> ckpt.requireAllConsumed(List.of(Pattern.compile("proj\\.weight$"))));
        }
    }

    @Test
    void unexpectedTensorListIsCapped() {
        List<TensorSpec> many = new ArrayList<>();
        for (int i = 0; i < 25; i++) {
            many.add(TensorSpec.ofFloats(String.format("t%02d", i), DType.F32, new long[] {1}, new float[1]));
        }
        ShardedCheckpointWriter.write(dir, many, 1 << 20);
        try (Checkpoint ckpt = Checkpoint.open(dir)) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> ckpt.requireAllConsumed(List.of()));
            String msg = e.getMessage();
            assertTrue(msg.startsWith("unexpected tensor(s) in checkpoint " + dir + ":"), msg);
            assertTrue(msg.contains("  t19 (in model.safetensors)\n  ... and 5 more\n25 tensor(s) not used;"), msg);
            assertFalse(msg.contains("t20"), msg);
        }
    }

    @Test
    void missingTensorAndWrongShape() {
        ShardedCheckpointWriter.write(dir, tinyModel(), 1 << 20);
        try (Checkpoint ckpt = Checkpoint.open(dir)) {
            CheckpointException missing = assertThrows(CheckpointException.class, () -> ckpt.tensor("lm_head.weight"));
            assertEquals("missing tensor lm_head.weight in checkpoint " + dir, missing.getMessage());
            assertThrows(CheckpointException.class, () -> ckpt.tensor("lm_head.weight", 2, 2));

            CheckpointException shape = assertThrows(CheckpointException.class,
                    () -> ckpt.tensor("embed.weight", 2, 3));
            assertEquals("tensor embed.weight in " + dir.resolve("model.safetensors") + " has shape [3, 2], expected"
                    + " [2, 3]", shape.getMessage());
            assertThrows(CheckpointException.class, () -> ckpt.tensor("embed.weight", 6));
            assertTrue(ckpt.unconsumed().contains("embed.weight"), "a rejected tensor is not consumed");
            Tensor t = ckpt.tensor("embed.weight", 3, 2);
            t.shape()[0] = 99;
            assertArrayEquals(new long[] {3, 2}, ckpt.tensor("embed.weight").shape(), "callers get their own shape");
        }
    }

    @Test
    void missingShardIsNamed() throws IOException {
        ShardedCheckpointWriter.write(dir, tinyModel(), 24);
        Path shard = dir.resolve("model-00002-of-00003.safetensors");
        Files.delete(shard);
        CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.open(dir));
        assertEquals("shard " + shard + " named in " + dir.resolve("model.safetensors.index.json")
                + " (for tensor layers.0.proj.weight and others) is missing", e.getMessage());
    }

    @Test
    void indexEntryAbsentFromItsShard() throws IOException {
        ShardedCheckpointWriter.write(dir, tinyModel(), 24);
        writeIndex("\"embed.weight\": \"model-00001-of-00003.safetensors\", "
                + "\"extra.weight\": \"model-00001-of-00003.safetensors\", "
                + "\"layers.0.proj.weight\": \"model-00002-of-00003.safetensors\", "
                + "\"layers.1.proj.weight\": \"model-00002-of-00003.safetensors\", "
                + "\"norm.weight\": \"model-00003-of-00003.safetensors\"");
        CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.open(dir));
        assertEquals("tensor extra.weight is listed in " + dir.resolve("model.safetensors.index.json")
                + " under model-00001-of-00003.safetensors but is absent from "
                + dir.resolve("model-00001-of-00003.safetensors"), e.getMessage());
    }

    @Test
    void shardHoldingATensorTheIndexOmits() throws IOException {
        ShardedCheckpointWriter.write(dir, tinyModel(), 24);
        writeIndex("\"embed.weight\": \"model-00001-of-00003.safetensors\", "
                + "\"layers.0.proj.weight\": \"model-00002-of-00003.safetensors\", "
                + "\"norm.weight\": \"model-00003-of-00003.safetensors\"");
        CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.open(dir));
        assertEquals(dir.resolve("model-00002-of-00003.safetensors") + " holds tensor layers.1.proj.weight, which "
                + dir.resolve("model.safetensors.index.json") + " does not list", e.getMessage());
    }

    @Test
    void tensorInTwoShards() throws IOException {
        SafetensorsWriter.write(dir.resolve("one.safetensors"), tinyModel().subList(0, 2));
        SafetensorsWriter.write(dir.resolve("two.safetensors"), tinyModel().subList(1, 4));
        writeIndex("\"embed.weight\": \"one.safetensors\", \"layers.0.proj.weight\": \"one.safetensors\", "
                + "\"layers.1.proj.weight\": \"two.safetensors\", \"norm.weight\": \"two.safetensors\"");
        CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.open(dir));
        assertEquals("tensor layers.0.proj.weight appears in two files: " + dir.resolve("one.safetensors") + " and "
                + dir.resolve("two.safetensors"), e.getMessage());
    }

    @Test
    void shardOutsideTheDirectoryIsRefused() throws IOException {
        writeIndex("\"w\": \"../elsewhere.safetensors\"");
        CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.open(dir));
        assertTrue(e.getMessage().contains("names shard \"../elsewhere.safetensors\" outside " + dir), e.getMessage());
    }

    @Test
    void malformedIndex() throws IOException {
        Path index = dir.resolve("model.safetensors.index.json");
        Files.writeString(index, "{\"metadata\": {}}");
        CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.open(dir));
        assertEquals(index + " has no \"weight_map\" object", e.getMessage());
        Files.writeString(index, "{\"weight_map\": {\"w\": 3}}");
        e = assertThrows(CheckpointException.class, () -> Checkpoint.open(dir));
        assertEquals(index + ": weight_map entry for tensor w must be a shard file name, found 3", e.getMessage());
        Files.writeString(index, "{\"weight_map\": ");
        e = assertThrows(CheckpointException.class, () -> Checkpoint.open(dir));
        assertTrue(e.getMessage().startsWith(index + " is not valid JSON"), e.getMessage());
    }

    @Test
    void shardsWithoutIndex() {
        SafetensorsWriter.write(dir.resolve("model-00001-of-00002.safetensors"), tinyModel().subList(0, 2));
        SafetensorsWriter.write(dir.resolve("model-00002-of-00002.safetensors"), tinyModel().subList(2, 4));
        CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.open(dir));
        assertTrue(e.getMessage().startsWith("checkpoint directory " + dir + " has safetensors files "
                + "[model-00001-of-00002.safetensors, model-00002-of-00002.safetensors]"), e.getMessage());
        assertTrue(e.getMessage().endsWith("the index file is missing"), e.getMessage());
    }

    @Test
    void noSafetensorsAtAll() throws IOException {
        Files.writeString(dir.resolve("pytorch_model.bin"), "not ours");
        CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.open(dir));
        assertEquals("no safetensors files in " + dir, e.getMessage());
        Path absent = dir.resolve("absent");
        e = assertThrows(CheckpointException.class, () -> Checkpoint.open(absent));
        assertEquals("checkpoint directory " + absent + " does not exist or is not a directory", e.getMessage());
    }

    @Test
    void badShardHeaderNamesTheShard() throws IOException {
        ShardedCheckpointWriter.write(dir, tinyModel(), 24);
        Path shard = dir.resolve("model-00003-of-00003.safetensors");
        RawSafetensors.write(shard,
                "{\"norm.weight\":{\"dtype\":\"F8_E5M2\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
        CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.open(dir));
        assertEquals("tensor norm.weight in " + shard + " has dtype F8_E5M2, which this runtime does not support"
                + " (supported: F32, BF16, F16, F8_E4M3, I8, U8, I32)", e.getMessage());
    }

    private void writeIndex(String weightMapEntries) throws IOException {
        Files.writeString(dir.resolve("model.safetensors.index.json"),
                "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {" + weightMapEntries + "}}");
    }
}
