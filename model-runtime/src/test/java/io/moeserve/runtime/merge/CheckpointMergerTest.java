package io.moeserve.runtime.merge;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.checkpoint.ShardedCheckpointWriter;
import io.moeserve.runtime.checkpoint.TensorSpec;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.expert.CheckpointExpertStore;
import io.moeserve.runtime.expert.ExpertLoader;
import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.family.ExpertProjections;
import io.moeserve.runtime.family.ModelFamily;
import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.RoutingObserver;
import io.moeserve.runtime.model.StepBatch;
import io.moeserve.runtime.model.TinyModels;
import io.moeserve.runtime.tensor.Tensor;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A merged checkpoint's invariants: merging in groups of one is the original model bit for bit; the alias table
 * sends every choice of the unchanged gate to its merged expert, which the checkpoint stores once; a token that
 * chose two experts of one group gets one call with the summed weight, which equals computing the expert twice;
 * alignment finds a permuted copy of an expert; what cannot be merged is refused with the reason.
 */
class CheckpointMergerTest {
    private static final int[] PROMPT = {5, 77, 300, 12, 9, 250, 31, 4, 199, 64, 18};

    @TempDir
    Path tmp;

    @ParameterizedTest
    @EnumSource(value = Architecture.class, names = {"MIXTRAL", "QWEN2_MOE", "QWEN3_MOE", "OLMOE", "DEEPSEEK_V2", "DEEPSEEK_V3", "GLM4_MOE"})
    void mergingInGroupsOfOneIsTheOriginalModelBitForBit(Architecture arch) {
        Path source = TinyModels.checkpoint(arch);
        ModelConfig config = ConfigParser.load(source);
        int n = config.moe().numExperts();
        double[][] importance = importance(config, 7);
        int[][] alias = CheckpointMerger.groups(source, importance, n);
        for (int l = 0; l < alias.length; l++) {
            if (config.isSparse(l)) assertArrayEquals(identity(n), alias[l], "layer " + l + ": n groups of n experts are the experts");
        }
        Path target = tmp.resolve(arch.name() + "-merged");
        CheckpointMerger.write(source, target, alias, importance, true);
        ModelConfig merged = ConfigParser.load(target);
        assertNotNull(merged.moe().expertAlias(), "config.json carries the alias table");
        assertEquals(n, merged.moe().numFfnExperts());
        int[] expected = new int[6];
        int[] actual = new int[6];
        float[] before;
        float[] after;
        try (MoeModel model = MoeModel.load(source, TinyModels.options(64))) {
            before = TinyModels.greedy(model, PROMPT, expected);
        }
        try (MoeModel model = MoeModel.load(target, TinyModels.options(64))) {
            after = TinyModels.greedy(model, PROMPT, actual);
        }
        assertArrayEquals(before, after, arch + ": logits");
        assertArrayEquals(expected, actual, arch + ": greedy tokens");
    }

    @ParameterizedTest
    @EnumSource(value = Architecture.class, names = {"MIXTRAL", "QWEN2_MOE", "DEEPSEEK_V3"})
    void theAliasTableRoutesTheUnchangedGatesChoicesToMergedExpertsStoredOnce(Architecture arch) throws IOException {
        Path source = TinyModels.checkpoint(arch);
        ModelConfig config = ConfigParser.load(source);
        int n = config.moe().numExperts();
        int m = n - 2;
        double[][] importance = importance(config, 3);
        int[][] alias = CheckpointMerger.groups(source, importance, m);
        Path target = tmp.resolve(arch.name() + "-merged");
        CheckpointMerger.write(source, target, alias, importance, true);

        ModelConfig merged = ConfigParser.load(target);
        assertEquals(n, merged.moe().numExperts(), "the gate still scores every original expert");
        assertEquals(m, merged.moe().numFfnExperts(), "the experts pods host are the merged ones");
        ModelFamily family = config.architecture().family();
        int first = firstSparse(config);
        try (Checkpoint ck = Checkpoint.open(target); Checkpoint original = Checkpoint.open(source)) {
            assertArrayEquals(original.tensor(family.moePrefix(first) + "gate.weight").toFloatArray(),
                    ck.tensor(family.moePrefix(first) + "gate.weight").toFloatArray(), "the gate is unchanged");
            String experts = family.moePrefix(first) + "experts.";
            TreeSet<Integer> stored = new TreeSet<>();
            for (String name : ck.names()) {
                if (name.startsWith(experts)) stored.add(Integer.parseInt(name.substring(experts.length(), name.indexOf('.', experts.length()))));
            }
            assertEquals(m, stored.size(), "each merged expert is stored once: " + stored);
            assertEquals(m - 1, stored.last());
            // What a pod or the model loads is sized to the merged experts: m ids per layer, m experts' bytes.
            CheckpointExpertStore hosted = ExpertLoader.loadHosted(merged, ck, ExpertSelection.ALL);
            CheckpointExpertStore full = ExpertLoader.loadHosted(config, original, ExpertSelection.ALL);
            assertEquals(m, hosted.numExperts());
            assertArrayEquals(identity(m), hosted.hostedExperts(first));
            assertEquals(full.byteSize() / n * m, hosted.byteSize());
        }

        // Up to the first MoE layer both models compute the same hidden state, so its gate chooses the same original
        // experts: the merged model must see exactly those choices mapped through the alias table.
        List<int[]> originalChoices = new ArrayList<>();
        List<float[]> originalWeights = new ArrayList<>();
        List<int[]> mergedChoices = new ArrayList<>();
        List<float[]> mergedWeights = new ArrayList<>();
        try (MoeModel model = MoeModel.load(source, TinyModels.options(64))) {
            prefill(model, watch(first, originalChoices, originalWeights));
        }
        try (MoeModel model = MoeModel.load(target, TinyModels.options(64))) {
            prefill(model, watch(first, mergedChoices, mergedWeights));
        }
        int[] chosen = originalChoices.get(0);
        float[] weights = originalWeights.get(0);
        int k = config.moe().topK();
        for (int t = 0; t < chosen.length / k; t++) {
            for (int j = 0; j < k; j++) {
                int e = chosen[t * k + j];
                int got = mergedChoices.get(0)[t * k + j];
                int earlier = -1;
                for (int i = 0; i < j; i++) if (alias[first][chosen[t * k + i]] == alias[first][e]) earlier = i;
                if (earlier < 0) {
                    assertEquals(alias[first][e], got, "token " + t + " slot " + j + ": expert " + e + " is computed by its merged expert");
                } else {
                    assertEquals(-1, got, "token " + t + " slot " + j + ": the second choice of one merged expert is not computed again");
                }
            }
        }
        assertEquals(sum(weights), sum(mergedWeights.get(0)), 1e-6f, "the weights are the gate's, moved, not changed");
    }

    @Test
    void aTokenThatChoseTwoExpertsOfOneGroupGetsOneCallWithTheSummedWeight() throws IOException {
        // Experts 0 and 1 made identical (gate rows too, so that a token choosing one chooses both): the original model
        // computes the expert twice with two weights; merged, 0 and 1 are one expert computed once with their sum.
        Path source = twins(TinyModels.checkpoint(Architecture.MIXTRAL));
        ModelConfig config = ConfigParser.load(source);
        int n = config.moe().numExperts();
        int[][] alias = new int[config.numLayers()][];
        double[][] importance = new double[config.numLayers()][n];
        for (int l = 0; l < alias.length; l++) {
            Arrays.fill(importance[l], 1);
            alias[l] = new int[n];
            for (int e = 1; e < n; e++) alias[l][e] = e - 1;
        }
        Path target = tmp.resolve("twins-merged");
        CheckpointMerger.write(source, target, alias, importance, false);
        float[] twice;
        float[] once;
        int[] deduplicated = new int[1];
        try (MoeModel model = MoeModel.load(source, TinyModels.options(64))) {
            twice = prefill(model, RoutingObserver.NONE);
        }
        RoutingObserver count = (layer, batch, k, experts, weights) -> {
            for (int i = 0; i < batch.size() * k; i++) if (experts[i] < 0) deduplicated[0]++;
        };
        try (MoeModel model = MoeModel.load(target, TinyModels.options(64))) {
            once = prefill(model, count);
        }
        assertTrue(deduplicated[0] > 0, "some token chose both twins (else the comparison proves nothing)");
        for (int i = 0; i < twice.length; i++) assertEquals(twice[i], once[i], 1e-5f * Math.max(1f, Math.abs(twice[i])), "logit " + i);
    }

    @Test
    void alignmentFindsAPermutedCopyOfTheLeader() {
        int h = 6;
        int w = 9;
        Random random = new Random(11);
        float[][] lead = {new float[w * h], new float[w * h], new float[h * w]};
        for (float[] a : lead) for (int i = 0; i < a.length; i++) a[i] = (float) random.nextGaussian();
        int[] perm = {4, 0, 7, 2, 8, 1, 6, 3, 5};
        float[] gate = new float[w * h];
        float[] up = new float[w * h];
        float[] down = new float[h * w];
        // The member's neuron perm[r] is the leader's neuron r.
        for (int r = 0; r < w; r++) {
            for (int c = 0; c < h; c++) {
                gate[perm[r] * h + c] = lead[0][r * h + c];
                up[perm[r] * h + c] = lead[1][r * h + c];
                down[c * w + perm[r]] = lead[2][c * w + r];
            }
        }
        assertArrayEquals(perm, CheckpointMerger.align(lead, gate, up, down, h, w));
    }

    @Test
    void theAssignmentIsTheCheapestOfAllPermutations() {
        Random random = new Random(5);
        for (int trial = 0; trial < 20; trial++) {
            int n = 1 + random.nextInt(6);
            double[][] cost = new double[n][n];
            for (double[] row : cost) for (int i = 0; i < n; i++) row[i] = random.nextInt(10) - 3;
            int[] p = Assignment.minimumCost(cost);
            assertEquals(n, Arrays.stream(p).distinct().count(), "a permutation");
            assertEquals(bruteForce(cost, new int[n], new boolean[n], 0), total(cost, p), 1e-9, "trial " + trial);
        }
    }

    @Test
    void theLeadersAreThePrunersKeptExpertsAndTheOthersJoinTheMostSimilar() {
        // Four experts in 2-D: 0 and 2 lead (most important); 1 points like 2, 3 like 0.
        float[] rows = {1, 0, 0.1f, 1, 0, 1, 0.9f, 0.2f};
        int[] alias = CheckpointMerger.groupLayer(new double[] {5, 1, 4, 2}, rows, 2, 2);
        assertArrayEquals(new int[] {0, 1, 1, 0}, alias);
    }

    @Test
    void unsupportedModelsAndAlreadyMergedCheckpointsAreRefused() {
        for (Architecture arch : new Architecture[] {Architecture.GPT_OSS, Architecture.MOE_PLUS_PLUS}) {
            Path source = TinyModels.checkpoint(arch);
            ModelConfig config = ConfigParser.load(source);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> CheckpointMerger.groups(source, importance(config, 1), 2));
            assertTrue(e.getMessage().contains("does not support"), e.getMessage());
        }
        Path source = TinyModels.checkpoint(Architecture.MIXTRAL);
        ModelConfig config = ConfigParser.load(source);
        Path target = tmp.resolve("once");
        double[][] importance = importance(config, 2);
        CheckpointMerger.write(source, target, CheckpointMerger.groups(source, importance, 4), importance, true);
        IllegalArgumentException again = assertThrows(IllegalArgumentException.class, () -> CheckpointMerger.groups(target, importance, 2));
        assertTrue(again.getMessage().contains("already merged"), again.getMessage());
        assertNull(config.moe().expertAlias(), "an unmerged checkpoint has no alias table");
    }

    private static double bruteForce(double[][] cost, int[] p, boolean[] used, int row) {
        if (row == p.length) return total(cost, p);
        double best = Double.POSITIVE_INFINITY;
        for (int c = 0; c < p.length; c++) {
            if (used[c]) continue;
            used[c] = true;
            p[row] = c;
            best = Math.min(best, bruteForce(cost, p, used, row + 1));
            used[c] = false;
        }
        return best;
    }

    private static double total(double[][] cost, int[] p) {
        double s = 0;
        for (int r = 0; r < p.length; r++) s += cost[r][p[r]];
        return s;
    }

    /** A copy of the checkpoint whose expert 1 is expert 0 in every MoE layer, gate row included. */
    private Path twins(Path source) throws IOException {
        ModelConfig config = ConfigParser.load(source);
        ModelFamily family = config.architecture().family();
        ExpertProjections p = family.expertProjections();
        Path out = tmp.resolve("twins");
        Files.createDirectories(out);
        try (Checkpoint ck = Checkpoint.open(source)) {
            List<TensorSpec> specs = new ArrayList<>();
            for (String name : new TreeSet<>(ck.names())) {
                Tensor t = ck.tensor(name);
                String from = name;
                for (int l = 0; l < config.numLayers(); l++) {
                    if (!config.isSparse(l)) continue;
                    for (String proj : new String[] {p.gate(), p.up(), p.down()}) {
                        if (name.equals(family.expertPrefix(l, 1) + proj)) from = family.expertPrefix(l, 0) + proj;
                    }
                }
                if (name.endsWith("gate.weight") && !name.contains("experts.")) {
                    long rowBytes = t.data().byteSize() / t.shape()[0];
                    MemorySegment data = t.data();
                    specs.add(new TensorSpec(name, t.dtype(), t.shape(), target -> {
                        target.copyFrom(data);
                        MemorySegment.copy(data, 0, target, rowBytes, rowBytes);
                    }));
                } else {
                    specs.add(TensorSpec.copyOf(name, ck.tensor(from)));
                }
            }
            ShardedCheckpointWriter.write(out, specs, 4L << 30);
        }
        try (Stream<Path> files = Files.list(source)) {
            for (Path f : files.toList()) {
                String name = f.getFileName().toString();
                if (name.endsWith(".json") && !name.equals("model.safetensors.index.json")) {
                    Files.copy(f, out.resolve(name), StandardCopyOption.REPLACE_EXISTING);
                }
            }
        }
        return out;
    }

    private static double[][] importance(ModelConfig config, int seed) {
        Random random = new Random(seed);
        double[][] out = new double[config.numLayers()][config.moe().numExperts()];
        for (double[] row : out) for (int e = 0; e < row.length; e++) row[e] = 1 + random.nextInt(100);
        return out;
    }

    private static int[] identity(int n) {
        int[] id = new int[n];
        for (int i = 0; i < n; i++) id[i] = i;
        return id;
    }

    private static int firstSparse(ModelConfig config) {
        for (int l = 0; l < config.numLayers(); l++) if (config.isSparse(l)) return l;
        throw new AssertionError("no MoE layer");
    }

    private static float sum(float[] a) {
        float s = 0;
        for (float v : a) s += v;
        return s;
    }

    private static RoutingObserver watch(int layer, List<int[]> choices, List<float[]> weights) {
        return (l, batch, k, experts, w) -> {
            if (l != layer) return;
            choices.add(Arrays.copyOf(experts, batch.size() * k));
            weights.add(Arrays.copyOf(w, batch.size() * k));
        };
    }

    /** The prompt in one step; every position's logits. */
    private static float[] prefill(MoeModel model, RoutingObserver observer) {
        KvCache cache = model.newKvCache(256, 1);
        int slot = cache.allocateSequence();
        StepBatch batch = new StepBatch(64);
        for (int p = 0; p < PROMPT.length; p++) batch.add(PROMPT[p], slot, p, true);
        float[] out = new float[PROMPT.length * model.config().vocabSize()];
        model.forward(batch, cache, out, observer);
        return out;
    }
}
