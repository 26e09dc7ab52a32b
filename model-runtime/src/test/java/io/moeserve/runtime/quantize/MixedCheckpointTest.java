package io.moeserve.runtime.quantize;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.checkpoint.QuantizationConfig;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.TinyModels;
import io.moeserve.runtime.tensor.Quantization;
import io.moeserve.runtime.tensor.Tensor;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Mixed-precision checkpoints: written as compressed-tensors with one config group per width, loaded through the
 * groups' targets with each expert in its own scheme, computing what their dequantized weights compute (bit for bit)
 * and staying near the float model.
 */
class MixedCheckpointTest {
    private static final int[] PROMPT = {5, 17, 42, 7, 99, 3, 64, 12};
    private static final int[] WIDTHS = {2, 3, 4, 8};
    private static final JsonMapper MAPPER = JsonMapper.builder().build();

    @Test
    void everyWidthLoadsWithItsSchemePerExpert(@TempDir Path tmp) throws IOException {
        Path source = TinyModels.bf16Checkpoint(Architecture.QWEN3_MOE);
        ModelConfig config = ConfigParser.load(source);
        // Expert x of layer l at width WIDTHS[(l + x) % 4]: every width in every layer, no two neighbours alike.
        int[][] bits = new int[config.numLayers()][];
        for (int l = 0; l < bits.length; l++) {
            bits[l] = new int[config.isSparse(l) ? config.moe().numFfnExperts() : 0];
            for (int x = 0; x < bits[l].length; x++) bits[l][x] = WIDTHS[(l + x) % 4];
        }
        Map<String, TargetFormat> formats = CheckpointQuantizer.expertFormats(source, new MixedPrecision.Plan(bits, null));
        Path out = tmp.resolve("mixed");
        CheckpointQuantizer.quantize(source, out, CheckpointQuantizer.Options.mixed(formats, TargetFormat.KEEP, TargetFormat.KEEP, 32));

        JsonNode q = MAPPER.readTree(out.resolve("config.json").toFile()).get("quantization_config");
        assertEquals("compressed-tensors", q.get("quant_method").asText());
        for (int b : WIDTHS) {
            JsonNode g = q.get("config_groups").get("group_experts_int" + b);
            assertNotNull(g, "a group for int" + b);
            assertEquals(b, g.get("weights").get("num_bits").asInt());
            assertEquals("pack-quantized", g.get("format").asText());
            for (JsonNode t : g.get("targets")) assertTrue(t.asText().startsWith("re:"), t.asText());
        }
        try (Checkpoint ck = Checkpoint.open(out); Checkpoint src = Checkpoint.open(source)) {
            int checked = 0;
            for (Map.Entry<String, TargetFormat> e : formats.entrySet()) {
                Tensor t = src.tensor(e.getKey());
                WeightMatrix w = ck.matrix(e.getKey(), t.shape()[0], t.shape()[1]);
                Quantization.Scheme expected = QuantizationConfig.parse(q, "config").schemeFor(module(e.getKey())).codes();
                assertEquals(expected, w.quantization().scheme(), e.getKey());
                assertEquals(e.getValue().bits(), w.quantization().scheme().bits(), e.getKey());
                checked++;
            }
            assertEquals(3 * config.moe().numFfnExperts() * (int) java.util.stream.IntStream.range(0, config.numLayers())
                    .filter(config::isSparse).count(), checked);
            // Attention stays in float: the groups target experts only.
            assertTrue(!ck.quantization().converts("model.layers.0.self_attn.q_proj"));
        }
        assertComputesItsDequantizedWeightsAndStaysNearTheFloatModel(source, out, tmp, 0.5);
    }

    /** The whole path of moe quantize --experts mixed: routing measured on calibration tokens, planned, written, run. */
    @Test
    void plannedFromMeasuredRoutingTheCheckpointIsCloseToTheFloatModel(@TempDir Path tmp) throws IOException {
        Path source = TinyModels.bf16Checkpoint(Architecture.MIXTRAL);
        ModelConfig config = ConfigParser.load(source);
        int[] calibration = new int[96];
        for (int i = 0; i < calibration.length; i++) calibration[i] = (i * 37 + 11) % config.vocabSize();
        RoutingStats stats;
        try (MoeModel model = MoeModel.load(source, TinyModels.options(64))) {
            stats = RoutingStats.measure(model, calibration, 32);
        }
        long routed = 0;
        for (int x = 0; x < config.moe().numFfnExperts(); x++) routed += stats.count(0, x);
        assertEquals((long) calibration.length * config.moe().topK(), routed, "every token's top-k pairs are counted");
        MixedPrecision.Plan plan = CheckpointQuantizer.planMixed(source, stats, WIDTHS, 4.0, MixedPrecision.Budget.STORED,
                MixedPrecision.Assignment.IMPORTANCE, 1, 32);
        assertTrue(plan.averageStoredBits() <= 4.0);
        Map<Integer, Integer> histogram = new TreeMap<>(plan.histogram());
        assertTrue(histogram.size() >= 2, "a mix of widths: " + histogram);
        Path out = tmp.resolve("planned");
        CheckpointQuantizer.quantize(source, out, CheckpointQuantizer.Options.mixed(CheckpointQuantizer.expertFormats(source, plan),
                TargetFormat.KEEP, TargetFormat.KEEP, 32));
        assertComputesItsDequantizedWeightsAndStaysNearTheFloatModel(source, out, tmp, 0.5);
    }

    private static void assertComputesItsDequantizedWeightsAndStaysNearTheFloatModel(Path source, Path quantized, Path tmp,
                                                                                   double bound) throws IOException {
        Path dequantized = tmp.resolve(quantized.getFileName() + "-dequantized");
        QuantizedModelTest.writeDequantized(source, quantized, dequantized);
        float[] expected;
        float[] actual;
        float[] original;
        int[] expectedTokens = new int[8];
        int[] actualTokens = new int[8];
        try (MoeModel model = MoeModel.load(dequantized, TinyModels.options(64))) {
            expected = TinyModels.greedy(model, PROMPT, expectedTokens);
        }
        try (MoeModel model = MoeModel.load(quantized, TinyModels.options(64))) {
            actual = TinyModels.greedy(model, PROMPT, actualTokens);
        }
        try (MoeModel model = MoeModel.load(source, TinyModels.options(64))) {
            original = TinyModels.greedy(model, PROMPT, new int[8]);
        }
        assertArrayEquals(expected, actual, "logits differ from the dequantized model's");
        assertArrayEquals(expectedTokens, actualTokens, "greedy tokens differ from the dequantized model's");
        double diff = 0, norm = 0;
        for (int i = 0; i < original.length; i++) {
            diff += Math.abs(original[i] - actual[i]);
            norm += Math.abs(original[i]);
        }
        assertTrue(diff > 0, "quantizing changed nothing: the quantized weights were not used");
        assertTrue(diff / norm < bound, "logits moved too far from the float model's: " + diff / norm);
    }

    private static String module(String weightName) {
        return weightName.substring(0, weightName.length() - ".weight".length());
    }
}
