package io.moeserve.runtime.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.TensorAccess;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Quantized checkpoints as their formats define them, built here by hand (codes packed as compressed-tensors'
 * {@code pack_to_int32} packs them, FP8 codes and block scales as DeepSeek-V3 ships them), read through
 * {@link Checkpoint#matrix}; and every malformed one refused at load, naming the tensor and its file.
 */
class QuantizedWeightsTest {
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final String CT_INT4_GROUP16 = """
            {"quant_method": "compressed-tensors", "format": "pack-quantized", "quantization_status": "compressed",
             "config_groups": {"g": {"targets": ["re:.*proj$"], "weights": {"num_bits": 4, "type": "int",
               "symmetric": %s, "strategy": "group", "group_size": 16}}},
             "ignore": %s}""";

    @TempDir
    Path dir;

    /** Signed int4 codes of a 4×40 matrix: q(r, c) = ((r · 7 + c · 3) mod 16) − 8. */
    private static int q4(int r, int c) {
        return ((r * 7 + c * 3) % 16) - 8;
    }

    private static float scale(int r, int g) {
        return 0.5f + r + 0.25f * g;
    }

    /** layer.proj as pack-quantized int4, groups of 16, optionally with zero points; extra tensors appended. */
    private List<TensorSpec> int4Layer(boolean asymmetric, long[] scaleShape) {
        List<TensorSpec> t = new ArrayList<>();
        // 40 columns, 8 codes per word: 5 words per row, code t of a word at bits 4t, stored q + 8.
        t.add(new TensorSpec("layer.proj.weight_packed", DType.I32, new long[] {4, 5}, m -> {
            for (int r = 0; r < 4; r++) {
                for (int w = 0; w < 5; w++) {
                    int word = 0;
                    for (int k = 0; k < 8; k++) word |= (q4(r, w * 8 + k) + 8) << (4 * k);
                    m.set(I32, 4L * (r * 5 + w), word);
                }
            }
        }));
        t.add(new TensorSpec("layer.proj.weight_scale", DType.BF16, scaleShape, m -> {
            for (int r = 0; r < 4; r++) for (int g = 0; g < 3; g++) TensorAccess.setFloat(m, DType.BF16, r * 3 + g, scale(r, g));
        }));
        t.add(new TensorSpec("layer.proj.weight_shape", DType.I32, new long[] {2}, m -> {
            m.set(I32, 0, 4);
            m.set(I32, 4, 40);
        }));
        if (asymmetric) {
            // Zero points packed along the rows: word [0][g] holds rows 0..3 at bits 4r, stored zp + 8.
            t.add(new TensorSpec("layer.proj.weight_zero_point", DType.I32, new long[] {1, 3}, m -> {
                for (int g = 0; g < 3; g++) {
                    int word = 0;
                    for (int r = 0; r < 4; r++) word |= (zp(r, g) + 8) << (4 * r);
                    m.set(I32, 4L * g, word);
                }
            }));
        }
        return t;
    }

    private static int zp(int r, int g) {
        return r - g - 1;
    }

    private Checkpoint write(String quantizationConfig, List<TensorSpec> tensors) throws IOException {
        Files.writeString(dir.resolve("config.json"), "{\"quantization_config\": " + quantizationConfig + "}");
        SafetensorsWriter.write(dir.resolve("model.safetensors"), tensors);
        return Checkpoint.open(dir);
    }

    @Test
    void packQuantizedInt4IsReadAsCompressedTensorsPacksIt() throws IOException {
        try (Checkpoint ck = write(CT_INT4_GROUP16.formatted("true", "[]"), int4Layer(false, new long[] {4, 3}))) {
            WeightMatrix w = ck.matrix("layer.proj.weight", 4, 40);
            for (int r = 0; r < 4; r++) {
                for (int c = 0; c < 40; c++) {
                    float s = TensorAccess.bf16ToFloat(TensorAccess.floatToBf16(scale(r, c / 16)));
                    assertEquals(q4(r, c) * s, w.get(r, c), "row " + r + " col " + c);
                }
            }
            assertTrue(ck.unconsumed().isEmpty(), "left unread: " + ck.unconsumed());
        }
    }

    @Test
    void asymmetricZeroPointsArePackedAlongTheRows() throws IOException {
        try (Checkpoint ck = write(CT_INT4_GROUP16.formatted("false", "[]"), int4Layer(true, new long[] {4, 3}))) {
            WeightMatrix w = ck.matrix("layer.proj.weight", 4, 40);
            for (int r = 0; r < 4; r++) {
                for (int c = 0; c < 40; c++) {
                    float s = TensorAccess.bf16ToFloat(TensorAccess.floatToBf16(scale(r, c / 16)));
                    assertEquals((q4(r, c) - zp(r, c / 16)) * s, w.get(r, c), "row " + r + " col " + c);
                }
            }
        }
    }

    @Test
    void deepSeekFp8BlocksThatDoNotDivideTheMatrix() throws IOException {
        // 3×5 weight in 2×2 blocks: scale_inv is [2, 3], its last row and column of blocks partial.
        String config = "{\"quant_method\": \"fp8\", \"fmt\": \"e4m3\", \"weight_block_size\": [2, 2]}";
        List<TensorSpec> t = List.of(
                new TensorSpec("layer.proj.weight", DType.F8_E4M3, new long[] {3, 5}, m -> {
                    for (int i = 0; i < 15; i++) m.set(ValueLayout.JAVA_BYTE, i, (byte) (0x30 + 9 * i));
                }),
                TensorSpec.ofFloats("layer.proj.weight_scale_inv", DType.F32, new long[] {2, 3}, new float[] {1, 2, 3, 4, 5, 6}));
        try (Checkpoint ck = write(config, t)) {
            WeightMatrix w = ck.matrix("layer.proj.weight", 3, 5);
            for (int r = 0; r < 3; r++) {
                for (int c = 0; c < 5; c++) {
                    float expected = TensorAccess.e4m3ToFloat((0x30 + 9 * (r * 5 + c)) & 0xff) * (1 + (r / 2) * 3 + c / 2);
                    assertEquals(expected, w.get(r, c), "row " + r + " col " + c);
                }
            }
        }
    }

    @Test
    void unsupportedSettingsFailWhenTheCheckpointOpens() throws IOException {
        SafetensorsWriter.write(dir.resolve("model.safetensors"), int4Layer(false, new long[] {4, 3}));
        String[][] cases = {
                {"{\"quant_method\": \"bitsandbytes\"}", "quant_method \"bitsandbytes\" is not supported"},
                {"{\"quant_method\": \"fp8\", \"fmt\": \"e5m2\"}", "fp8 fmt \"e5m2\" is not supported"},
                {CT_INT4_GROUP16.formatted("true", "[]").replace("\"num_bits\": 4", "\"num_bits\": 5"),
                        "pack-quantized int with num_bits 5 is not supported"},
                {CT_INT4_GROUP16.formatted("true", "[]").replace("pack-quantized", "marlin-24"), "format \"marlin-24\" is not supported"},
                {CT_INT4_GROUP16.formatted("true", "[]").replace("\"group\"", "\"token\""), "strategy \"token\" is not supported"},
                {CT_INT4_GROUP16.formatted("true", "[\"re:(\"]"), "invalid regular expression re:("},
                {CT_INT4_GROUP16.formatted("true", "[]").replace("\"compressed\"", "\"frozen\""),
                        "quantization_status \"frozen\" is not supported"},
        };
        for (String[] c : cases) {
            Files.writeString(dir.resolve("config.json"), "{\"quantization_config\": " + c[0] + "}");
            CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.open(dir), c[0]);
            assertTrue(e.getMessage().contains(c[1]) && e.getMessage().contains("config.json"), e.getMessage());
        }
    }

    @Test
    void malformedQuantizedTensorsNameTheTensorAndItsFile() throws IOException {
        Path file = dir.resolve("model.safetensors");
        // A missing scale.
        List<TensorSpec> noScale = new ArrayList<>(int4Layer(false, new long[] {4, 3}));
        noScale.removeIf(t -> t.name().endsWith("_scale"));
        assertRefused(CT_INT4_GROUP16.formatted("true", "[]"), noScale,
                "missing tensor layer.proj.weight_scale", "layer.proj.weight_packed in " + file);
        // A scale of the wrong shape.
        List<TensorSpec> wrongShape = new ArrayList<>(int4Layer(false, new long[] {3, 4}));
        assertRefused(CT_INT4_GROUP16.formatted("true", "[]"), wrongShape,
                "tensor layer.proj.weight_scale in " + file + " is BF16[3, 4], expected float scales of shape [4, 3]");
        // Listed in ignore, but stored packed.
        assertRefused(CT_INT4_GROUP16.formatted("true", "[\"layer.proj\"]"), int4Layer(false, new long[] {4, 3}),
                "in " + file + " quantizes layer.proj, but quantization_config lists layer.proj among the modules it ignores");
        // Zero points where the config says symmetric, and none where it says asymmetric.
        assertRefused(CT_INT4_GROUP16.formatted("true", "[]"), int4Layer(true, new long[] {4, 3}),
                "layer.proj.weight_zero_point in " + file + " gives zero points, but quantization_config says layer.proj is symmetric");
        assertRefused(CT_INT4_GROUP16.formatted("false", "[]"), int4Layer(false, new long[] {4, 3}),
                "missing tensor layer.proj.weight_zero_point");
        // A shape that disagrees with the caller's.
        List<TensorSpec> shape = new ArrayList<>(int4Layer(false, new long[] {4, 3}));
        assertRefused(CT_INT4_GROUP16.formatted("true", "[]"), shape, 4, 33,
                "tensor layer.proj.weight_shape in " + file + " says 4x40, expected 4x33");
        // Quantized weights in a checkpoint whose config.json has no quantization_config.
        Files.writeString(dir.resolve("config.json"), "{}");
        SafetensorsWriter.write(file, int4Layer(false, new long[] {4, 3}));
        try (Checkpoint ck = Checkpoint.open(dir)) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> ck.matrix("layer.proj.weight", 4, 40));
            assertTrue(e.getMessage().contains("in " + file + " quantizes layer.proj, but config.json has no quantization_config"),
                    e.getMessage());
        }
    }

    @Test
    void aQuantizedNormIsNotReadAsFloats() throws IOException {
        Files.writeString(dir.resolve("config.json"), "{}");
        Path file = dir.resolve("model.safetensors");
        SafetensorsWriter.write(file, List.of(new TensorSpec("norm.weight", DType.F8_E4M3, new long[] {4}, m -> m.fill((byte) 0))));
        try (Checkpoint ck = Checkpoint.open(dir)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ck.tensor("norm.weight").toFloatArray());
            assertTrue(e.getMessage().startsWith("tensor norm.weight in " + file + " has dtype F8_E4M3 where float weights"),
                    e.getMessage());
        }
    }

    private void assertRefused(String config, List<TensorSpec> tensors, String... fragments) throws IOException {
        assertRefused(config, tensors, 4, 40, fragments);
    }

    private void assertRefused(String config, List<TensorSpec> tensors, int rows, int cols, String... fragments)
            throws IOException {
        try (Checkpoint ck = write(config, tensors)) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> ck.matrix("layer.proj.weight", rows, cols));
            for (String f : fragments) assertTrue(e.getMessage().contains(f), "expected \"" + f + "\" in: " + e.getMessage());
        }
    }
}
