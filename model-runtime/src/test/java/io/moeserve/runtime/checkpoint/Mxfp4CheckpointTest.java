package io.moeserve.runtime.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.moeserve.runtime.quantize.Mxfp4;
import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * gpt-oss's MXFP4 checkpoints: the mxfp4 quantization_config (modules_to_not_convert matched as transformers
 * matches it), and experts' blocks and scales read with {@link Checkpoint#mxfp4Matrix}, written here with
 * {@link Mxfp4#quantize}; malformed ones refused naming the tensor and its file.
 */
class Mxfp4CheckpointTest {
    /** gpt-oss-20b's quantization_config. */
    private static final String GPT_OSS = """
            {"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
             "model.embed_tokens", "lm_head"]}""";
    private static final String PREFIX = "model.layers.0.mlp.experts.down_proj";
    private static final int EXPERTS = 3, ROWS = 4, COLS = 64;

    @TempDir
    Path dir;

    private final Random random = new Random(7);
    /** The float weights of the three experts, [EXPERTS · ROWS, COLS]. */
    private final float[] weights = new float[EXPERTS * ROWS * COLS];

    {
        for (int i = 0; i < weights.length; i++) weights[i] = (float) random.nextGaussian() * (1 + i / 256);
    }

    private Checkpoint write(String quantizationConfig, List<TensorSpec> tensors) throws IOException {
        Files.writeString(dir.resolve("config.json"), quantizationConfig == null ? "{}"
                : "{\"quantization_config\": " + quantizationConfig + "}");
        SafetensorsWriter.write(dir.resolve("model.safetensors"), tensors);
        return Checkpoint.open(dir);
    }

    /** The experts' blocks [E, rows, cols / 32, 16] and scales [E, rows, cols / 32], or 3-D and 2-D when single. */
    private List<TensorSpec> experts(boolean single, DType blocksType, long[] scalesShape) {
        int rows = single ? ROWS : EXPERTS * ROWS;
        Mxfp4.Quantized q = Mxfp4.quantize(single ? Arrays.copyOf(weights, ROWS * COLS) : weights, rows, COLS);
        long[] blocksShape = single ? new long[] {ROWS, COLS / 32, 16} : new long[] {EXPERTS, ROWS, COLS / 32, 16};
        if (scalesShape == null) scalesShape = single ? new long[] {ROWS, COLS / 32} : new long[] {EXPERTS, ROWS, COLS / 32};
        List<TensorSpec> t = new ArrayList<>();
        t.add(new TensorSpec(PREFIX + "_blocks", blocksType, blocksShape, m -> copy(q.blocks(), m)));
        t.add(new TensorSpec(PREFIX + "_scales", DType.U8, scalesShape, m -> copy(q.scales(), m)));
        return t;
    }

    private static void copy(byte[] bytes, MemorySegment target) {
        MemorySegment.copy(bytes, 0, target, ValueLayout.JAVA_BYTE, 0, (int) Math.min(bytes.length, target.byteSize()));
    }

    @Test
    void expertsAreRowSlicesOfOneMatrixOfTheirDequantizedWeights() throws IOException {
        Mxfp4.Quantized q = Mxfp4.quantize(weights, EXPERTS * ROWS, COLS);
        float[] expected = Mxfp4.dequantize(q.blocks(), q.scales(), EXPERTS * ROWS, COLS);
        List<TensorSpec> tensors = experts(false, DType.U8, null);
        tensors.add(TensorSpec.ofFloats("model.layers.0.self_attn.q_proj.weight", DType.BF16, new long[] {2, 2}, new float[] {1, 2, 3, 4}));
        try (Checkpoint ck = write(GPT_OSS, tensors)) {
            WeightMatrix all = ck.mxfp4Matrix(PREFIX, ROWS, COLS);
            assertEquals(EXPERTS * ROWS, all.rows());
            assertEquals("mxfp4", all.formatName());
            assertEquals(EXPERTS * ROWS * (COLS / 2 + COLS / 32), all.byteSize());
            for (int e = 0; e < EXPERTS; e++) {
                WeightMatrix expert = all.rowSlice(PREFIX + "[" + e + "]", e * ROWS, ROWS);
                for (int r = 0; r < ROWS; r++) {
                    for (int c = 0; c < COLS; c++) {
                        assertEquals(expected[(e * ROWS + r) * COLS + c], expert.get(r, c), "expert " + e + " row " + r + " col " + c);
                    }
                }
            }
            // Attention stays in float, as modules_to_not_convert says.
            assertFalse(ck.matrix("model.layers.0.self_attn.q_proj.weight", 2, 2).isQuantized());
            assertTrue(ck.unconsumed().isEmpty(), "left unread: " + ck.unconsumed());
        }
    }

    @Test
    void aSingleMatrixMayHaveNoExpertAxis() throws IOException {
        try (Checkpoint ck = write(GPT_OSS, experts(true, DType.U8, null))) {
            WeightMatrix w = ck.mxfp4Matrix(PREFIX, ROWS, COLS);
            Mxfp4.Quantized q = Mxfp4.quantize(Arrays.copyOf(weights, ROWS * COLS), ROWS, COLS);
            float[] expected = Mxfp4.dequantize(q.blocks(), q.scales(), ROWS, COLS);
            for (int i = 0; i < expected.length; i++) assertEquals(expected[i], w.get(i / COLS, i % COLS), "weight " + i);
        }
    }

    @Test
    void modulesToNotConvertMatchAsTransformersMatchesThem() throws IOException {
        try (Checkpoint ck = write(GPT_OSS, experts(false, DType.U8, null))) {
            QuantizationConfig config = ck.quantization();
            assertTrue(config.isMxfp4() && config.isQuantized());
            assertTrue(config.converts("model.layers.0.mlp.experts"));
            assertTrue(config.converts("model.layers.23.mlp.experts"));
            for (String kept : List.of("model.layers.0.self_attn", "model.layers.17.self_attn.q_proj", "model.layers.3.mlp.router",
                    "model.embed_tokens", "lm_head")) {
                assertFalse(config.converts(kept), kept);
            }
            // Linear layers are never MXFP4: transformers converts only the experts.
            assertNull(config.schemeFor("model.layers.0.mlp.experts"));
            assertEquals(EXPERTS * (long) ROWS * (COLS / 2 + COLS / 32),
                    config.storedBytes("model.layers.0.mlp.experts", EXPERTS * ROWS, COLS, 2));
            assertEquals(2L * 4 * 4, config.storedBytes("model.layers.0.self_attn.q_proj", 4, 4, 2));
            assertTrue(config.describe().startsWith("mxfp4: "), config.describe());
        }
        // A bare entry also names the modules it ends (newer transformers' should_convert_module).
        QuantizationConfig suffix = QuantizationConfig.parse(new ObjectMapper()
                .readTree("{\"quant_method\": \"mxfp4\", \"modules_to_not_convert\": [\"fc1\"]}"), "test");
        assertFalse(suffix.converts("model.decoder.layers.23.fc1"));
        assertTrue(suffix.converts("model.decoder.layers.23.fc2"));
        // An invalid pattern fails when the checkpoint opens.
        Files.writeString(dir.resolve("config.json"),
                "{\"quantization_config\": {\"quant_method\": \"mxfp4\", \"modules_to_not_convert\": [\"(\"]}}");
        CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.open(dir));
        assertTrue(e.getMessage().contains("config.json") && e.getMessage().contains("modules_to_not_convert"), e.getMessage());
    }

    @Test
    void malformedBlocksAndScalesNameTheTensorAndItsFile() throws IOException {
        Path file = dir.resolve("model.safetensors");
        assertRefused(GPT_OSS, experts(false, DType.I8, null), ROWS, COLS,
                "tensor " + PREFIX + "_blocks in " + file + " is I8[3, 4, 2, 16], expected U8 [experts, 4, 2, 16]");
        assertRefused(GPT_OSS, experts(false, DType.U8, new long[] {EXPERTS, ROWS, 3}), ROWS, COLS,
                "tensor " + PREFIX + "_scales in " + file + " is U8[3, 4, 3], expected U8 [3, 4, 2]");
        assertRefused(GPT_OSS, experts(false, DType.U8, null), ROWS, 2 * COLS, "tensor " + PREFIX + "_blocks in " + file,
                "expected U8 [experts, 4, 4, 16]");
        assertRefused(GPT_OSS, experts(false, DType.U8, null), ROWS, 48, "MXFP4 needs columns in whole groups of 32");
        List<TensorSpec> noScales = experts(false, DType.U8, null);
        noScales.remove(1);
        assertRefused(GPT_OSS, noScales, ROWS, COLS, "missing tensor " + PREFIX + "_scales");
        assertRefused(null, experts(false, DType.U8, null), ROWS, COLS,
                PREFIX + "_blocks in " + file + " holds MXFP4 codes, but config.json has no quantization_config");
        assertRefused("{\"quant_method\": \"mxfp4\", \"modules_to_not_convert\": [\"model.layers.0.mlp\"]}",
                experts(false, DType.U8, null), ROWS, COLS, "modules_to_not_convert names model.layers.0.mlp.experts");
        // A BF16 checkpoint of the same model: the experts are plain tensors.
        List<TensorSpec> bf16 = List.of(TensorSpec.ofFloats(PREFIX, DType.BF16, new long[] {2}, new float[] {1, 2}));
        assertRefused(GPT_OSS, bf16, ROWS, COLS, "missing tensor " + PREFIX + "_blocks",
                PREFIX + " is stored as BF16 in " + file + ", not as MXFP4 blocks and scales");
    }

    private void assertRefused(String config, List<TensorSpec> tensors, int rows, int cols, String... fragments)
            throws IOException {
        try (Checkpoint ck = write(config, tensors)) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> ck.mxfp4Matrix(PREFIX, rows, cols));
            for (String f : fragments) assertTrue(e.getMessage().contains(f), "expected \"" + f + "\" in: " + e.getMessage());
            assertTrue(ck.unconsumed().containsAll(ck.names()), "nothing consumed by a refused read");
        }
    }
}
