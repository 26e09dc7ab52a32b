package io.moeserve.runtime.prune;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.PrunedExperts;
import io.moeserve.runtime.model.RoutingObserver;
import io.moeserve.runtime.model.StepBatch;
import io.moeserve.runtime.model.TinyModels;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A pruned checkpoint is the original model with the pruned experts' gate logits at −∞ (the run-time
 * {@link PrunedExperts}), for every supported architecture; the run-time switch never selects a pruned expert; the
 * unsupported models are refused with the reason.
 */
class CheckpointPrunerTest {
    private static final int[] PROMPT = {5, 77, 300, 12, 9, 250, 31, 4, 199, 64, 18};
    private static final int[] PRUNED = {1, 4};

    @TempDir
    Path tmp;

    @ParameterizedTest
    @EnumSource(value = Architecture.class, names = {"MIXTRAL", "QWEN2_MOE", "QWEN3_MOE", "OLMOE", "DEEPSEEK_V2", "DEEPSEEK_V3", "GLM4_MOE"})
    void aPrunedCheckpointIsTheModelWithThoseGateLogitsMasked(Architecture arch) throws IOException {
        Path source = ungrouped(arch);
        ModelConfig config = ConfigParser.load(source);
        int[][] pruned = new int[config.numLayers()][];
        for (int l = 0; l < pruned.length; l++) pruned[l] = config.isSparse(l) ? PRUNED : new int[0];
        Path target = tmp.resolve(arch.name() + "-pruned");
        CheckpointPruner.write(source, target, pruned);

        ModelConfig after = ConfigParser.load(target);
        assertEquals(config.moe().numExperts() - PRUNED.length, after.moe().numExperts(), "config.json's expert count");
        float[] masked;
        List<String> chosenPruned = new ArrayList<>();
        RoutingObserver watch = (layer, batch, k, experts, weights) -> {
            for (int i = 0; i < batch.size() * k; i++) {
                for (int p : PRUNED) if (experts[i] == p) chosenPruned.add("layer " + layer + " row " + i / k);
            }
        };
        try (MoeModel model = MoeModel.load(source, TinyModels.options(64).withPrunedExperts(PrunedExperts.parse("*:1,4")))) {
            masked = logits(model, watch);
        }
        assertTrue(chosenPruned.isEmpty(), arch + ": a pruned expert was selected: " + chosenPruned);
        float[] unmasked;
        try (MoeModel model = MoeModel.load(source, TinyModels.options(64))) {
            unmasked = logits(model, RoutingObserver.NONE);
        }
        float[] fromPrunedCheckpoint;
        try (MoeModel model = MoeModel.load(target, TinyModels.options(64))) {
            fromPrunedCheckpoint = logits(model, RoutingObserver.NONE);
        }
        // The gate's softmax sums over fewer lanes in the pruned checkpoint: the same terms, rounded in another order.
        for (int i = 0; i < masked.length; i++) {
            assertEquals(masked[i], fromPrunedCheckpoint[i], 1e-4f * Math.max(1f, Math.abs(masked[i])), arch + ": logit " + i);
        }
        boolean differs = false;
        for (int i = 0; i < masked.length; i++) differs |= Math.abs(masked[i] - unmasked[i]) > 1e-3f;
        assertTrue(differs, arch + ": pruning changes the output (else the comparison proves nothing)");
    }

    @Test
    void unsupportedModelsAreRefusedWithTheReason() {
        int[][] none = new int[8][];
        for (Architecture arch : new Architecture[] {Architecture.GPT_OSS, Architecture.MOE_PLUS_PLUS, Architecture.DEEPSEEK_V3}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> CheckpointPruner.write(TinyModels.checkpoint(arch), tmp.resolve(arch.name()), none));
            assertTrue(e.getMessage().contains("does not support"), e.getMessage());
        }
    }

    @Test
    void theLeastImportantExpertsOfEachLayerGo() {
        ModelConfig config = ConfigParser.load(TinyModels.checkpoint(Architecture.MIXTRAL));
        int e = config.moe().numExperts();
        double[][] importance = new double[config.numLayers()][e];
        for (int l = 0; l < config.numLayers(); l++) for (int x = 0; x < e; x++) importance[l][x] = (x * 5 + l) % e;
        int[][] pruned = CheckpointPruner.leastImportant(config, importance, 0.75);
        int drop = e - (int) Math.round(0.75 * e);
        for (int l = 0; l < config.numLayers(); l++) {
            assertEquals(drop, pruned[l].length);
            for (int p : pruned[l]) {
                for (int x = 0; x < e; x++) {
                    boolean kept = Arrays.binarySearch(pruned[l], x) < 0;
                    if (kept) assertTrue(importance[l][x] >= importance[l][p], "layer " + l + " keeps " + x + " over " + p);
                }
            }
        }
        int[][] all = CheckpointPruner.leastImportant(config, importance, 0.01);
        assertEquals(e - config.moe().topK(), all[0].length, "top-k experts always stay");
    }

    @Test
    void importanceIsCountTimesMeanWeightFromRoutingStatistics() throws IOException {
        ModelConfig config = ConfigParser.load(TinyModels.checkpoint(Architecture.MIXTRAL));
        int e = config.moe().numExperts();
        ObjectMapper json = new ObjectMapper();
        ObjectNode stats = json.createObjectNode();
        stats.put("schema", "moe-serve.routing-stats.v1");
        var tokens = stats.putArray("tokens");
        var weights = stats.putArray("mean_weights");
        for (int l = 0; l < config.numLayers(); l++) {
            var t = tokens.addArray();
            var w = weights.addArray();
            for (int x = 0; x < e; x++) {
                t.add(10 * (x + 1));
                w.add(x == 0 ? 0.9 : 0.5);
            }
        }
        Path file = Files.writeString(tmp.resolve("stats.json"), json.writeValueAsString(stats));
        double[][] importance = CheckpointPruner.importance(file, config);
        assertEquals(9.0, importance[0][0], 1e-9);
        assertEquals(10.0, importance[0][1], 1e-9);
        stats.remove("mean_weights");
        Files.writeString(file, json.writeValueAsString(stats));
        assertArrayEquals(new double[] {10, 20}, Arrays.copyOf(CheckpointPruner.importance(file, config)[0], 2), "count alone");
    }

    /** moe eval --routing-stats writes the per-layer list format; it ranks experts as the router's table does. */
    @Test
    void theEvalCommandsStatisticsGiveTheSameImportanceAsTheRoutersTable() throws IOException {
        ModelConfig config = ConfigParser.load(TinyModels.checkpoint(Architecture.MIXTRAL));
        int e = config.moe().numExperts();
        ObjectMapper json = new ObjectMapper();
        ObjectNode router = json.createObjectNode();
        ObjectNode eval = json.createObjectNode();
        var tokens = router.putArray("tokens");
        var weights = router.putArray("mean_weights");
        var layers = eval.putArray("layers");
        for (int l = 0; l < config.numLayers(); l++) {
            var t = tokens.addArray();
            var w = weights.addArray();
            ObjectNode layer = layers.addObject().put("layer", l);
            var experts = layer.putArray("experts");
            for (int x = 0; x < e; x++) {
                long count = 7L * (l + 1) + 3L * x;
                double weight = 0.1 + 0.05 * ((x + l) % 5);
                t.add(count);
                w.add(weight);
                experts.addObject().put("expert", x).put("count", count).put("frequency", 0.1).put("mean_weight", weight);
            }
        }
        Path routerFile = Files.writeString(tmp.resolve("router.json"), json.writeValueAsString(router));
        Path evalFile = Files.writeString(tmp.resolve("eval.json"), json.writeValueAsString(eval));
        double[][] fromRouter = CheckpointPruner.importance(routerFile, config);
        double[][] fromEval = CheckpointPruner.importance(evalFile, config);
        for (int l = 0; l < config.numLayers(); l++) assertArrayEquals(fromRouter[l], fromEval[l], 1e-12, "layer " + l);
        assertEquals((7 + 3) * 0.15, fromEval[0][1], 1e-12);
    }

    /** The tiny checkpoint, with DeepSeek's and GLM's routing made ungrouped (their synthetic configs use 4 groups). */
    private Path ungrouped(Architecture arch) throws IOException {
        Path source = TinyModels.checkpoint(arch);
        if (arch != Architecture.DEEPSEEK_V2 && arch != Architecture.DEEPSEEK_V3 && arch != Architecture.GLM4_MOE) return source;
        Path copy = tmp.resolve(arch.name() + "-ungrouped");
        Files.createDirectories(copy);
        try (Stream<Path> files = Files.list(source)) {
            for (Path f : files.toList()) Files.copy(f, copy.resolve(f.getFileName()));
        }
        ObjectMapper json = new ObjectMapper();
        ObjectNode config = (ObjectNode) json.readTree(copy.resolve("config.json").toFile());
        config.put("n_group", 1);
        config.put("topk_group", 1);
        if (arch == Architecture.DEEPSEEK_V2) config.put("topk_method", "greedy");
        json.writeValue(copy.resolve("config.json").toFile(), config);
        return copy;
    }

    private static float[] logits(MoeModel model, RoutingObserver observer) {
        KvCache cache = model.newKvCache(256, 1);
        int slot = cache.allocateSequence();
        StepBatch batch = new StepBatch(64);
        for (int p = 0; p < PROMPT.length; p++) batch.add(PROMPT[p], slot, p, true);
        float[] out = new float[PROMPT.length * model.config().vocabSize()];
        model.forward(batch, cache, out, observer);
        return out;
    }
}
