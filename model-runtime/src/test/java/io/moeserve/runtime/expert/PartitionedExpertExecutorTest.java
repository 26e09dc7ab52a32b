package io.moeserve.runtime.expert;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import io.moeserve.runtime.model.ModelOptions;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.TinyModels;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Splitting experts over groups (each loading only its own experts from the checkpoint, as an expert pod does)
 * must not change what the model computes.
 */
class PartitionedExpertExecutorTest {
    private static final int[] PROMPT = {5, 77, 300, 12, 9, 250, 31, 4, 199, 64, 18};

    /** Computes each group's batch with that group's own experts, as a pod would. */
    private static final class InProcessGroups implements ExpertBatchDispatcher {
        final List<LocalExpertExecutor> groups = new ArrayList<>();
        final List<Checkpoint> checkpoints = new ArrayList<>();
        int calls;

        InProcessGroups(Path dir, ModelConfig config, List<ExpertSet> sets, int maxTokens, boolean int8Activations) {
            for (ExpertSet s : sets) {
                Checkpoint ck = Checkpoint.open(dir);
                ck.useInt8Activations(int8Activations);
                checkpoints.add(ck);
                CheckpointExpertStore store = ExpertLoader.loadHosted(config, ck, s);
                groups.add(new LocalExpertExecutor(store, new CpuMatmulKernels(Parallel.shared()), maxTokens, config.moe().topK()));
            }
        }

        @Override
        public void dispatch(long step, int layer, ExpertBatch[] batches) {
            for (int g = 0; g < batches.length; g++) {
                ExpertBatch b = batches[g];
                if (b.size() == 0) continue;
                calls++;
                groups.get(g).computeExperts(step, layer, b.size(), b.k(), b.x, b.experts, b.weights, b.out);
            }
        }

        void close() {
            checkpoints.forEach(Checkpoint::close);
        }
    }

    private static List<ExpertSet> halves(ModelConfig c) {
        int e = c.moe().numFfnExperts();
        return List.of(ExpertSet.parse("*:0-" + (e / 2 - 1)), ExpertSet.parse("*:" + (e / 2) + "-" + (e - 1)));
    }

    /** Two groups that both host the two middle experts, the rest split in halves. */
    private static List<ExpertSet> overlapping(ModelConfig c) {
        int e = c.moe().numFfnExperts();
        return List.of(ExpertSet.parse("*:0-" + (e / 2)), ExpertSet.parse("*:" + (e / 2 - 1) + "-" + (e - 1)));
    }

    private static float[] run(MoeModel model, int[] out) {
        return TinyModels.greedy(model, PROMPT, out);
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void twoGroupsComputeWhatOneProcessComputes(Architecture arch) {
        compareSplitWithOneProcess(arch, false);
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void groupsThatShareExpertsComputeWhatOneProcessComputes(Architecture arch) {
        compareSplitWithOneProcess(arch, true);
    }

    @org.junit.jupiter.api.Test
    void quantizedExpertsSplitOverTwoGroupsComputeWhatOneProcessComputes(@org.junit.jupiter.api.io.TempDir Path tmp) {
        Path dir = tmp.resolve("int4");
        io.moeserve.runtime.quantize.CheckpointQuantizer.quantize(TinyModels.bf16Checkpoint(Architecture.MIXTRAL), dir,
                new io.moeserve.runtime.quantize.CheckpointQuantizer.Options(io.moeserve.runtime.quantize.TargetFormat.INT4,
                        io.moeserve.runtime.quantize.TargetFormat.INT8, 32, false));
        compareSplitWithOneProcess(Architecture.MIXTRAL, dir, false);
    }

    /** With int8 activations on in the router and in each group: the groups' panels compute the local panels' bits. */
    @org.junit.jupiter.api.Test
    void int8ActivationsSplitOverTwoGroupsComputeWhatOneProcessComputes(@org.junit.jupiter.api.io.TempDir Path tmp) {
        Path dir = tmp.resolve("int4");
        io.moeserve.runtime.quantize.CheckpointQuantizer.quantize(TinyModels.bf16Checkpoint(Architecture.MIXTRAL), dir,
                new io.moeserve.runtime.quantize.CheckpointQuantizer.Options(io.moeserve.runtime.quantize.TargetFormat.INT4,
                        io.moeserve.runtime.quantize.TargetFormat.INT8, 32, false));
        compareSplitWithOneProcess(Architecture.MIXTRAL, dir, false, true);
    }

    @org.junit.jupiter.api.Test
    void mxfp4ExpertsSplitOverTwoGroupsComputeWhatOneProcessComputes() {
        compareSplitWithOneProcess(Architecture.GPT_OSS, TinyModels.mxfp4Checkpoint(), false);
    }

    /**
     * A merged checkpoint (6 merged experts for the gate's 8): the groups split the merged experts, each hosted once,
     * and the router sends them the merged ids; the output is the one process's, deduplicated calls included.
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(booleans = {false, true})
    void mergedExpertsSplitOverGroupsComputeWhatOneProcessComputes(boolean shared, @org.junit.jupiter.api.io.TempDir Path tmp) {
        Path source = TinyModels.checkpoint(Architecture.MIXTRAL);
        ModelConfig config = ConfigParser.load(source);
        double[][] importance = new double[config.numLayers()][config.moe().numExperts()];
        for (int l = 0; l < importance.length; l++) for (int e = 0; e < importance[l].length; e++) importance[l][e] = (e * 3 + l) % 8 + 1;
        Path dir = tmp.resolve("merged");
        io.moeserve.runtime.merge.CheckpointMerger.write(source, dir,
                io.moeserve.runtime.merge.CheckpointMerger.groups(source, importance, 6), importance, true);
        assertEquals(6, ConfigParser.load(dir).moe().numFfnExperts());
        compareSplitWithOneProcess(Architecture.MIXTRAL, dir, shared);
    }

    private void compareSplitWithOneProcess(Architecture arch, boolean shared) {
        compareSplitWithOneProcess(arch, TinyModels.checkpoint(arch), shared);
    }

    private void compareSplitWithOneProcess(Architecture arch, Path dir, boolean shared) {
        compareSplitWithOneProcess(arch, dir, shared, false);
    }

    private void compareSplitWithOneProcess(Architecture arch, Path dir, boolean shared, boolean int8Activations) {
        int[] expected = new int[10];
        int[] actual = new int[10];
        float[] expectedLogits;
        try (MoeModel local = MoeModel.load(dir, TinyModels.options(64).withInt8Activations(int8Activations))) {
            if (int8Activations) assertTrue(local.experts().expert(0, 0).gate().panels() != null, "no panels");
            expectedLogits = run(local, expected);
        }
        ModelConfig config = ConfigParser.load(dir);
        InProcessGroups[] holder = new InProcessGroups[1];
        ModelOptions options = TinyModels.options(64).withInt8Activations(int8Activations).withExecutor(ExpertSelection.NONE, store -> {
            List<ExpertSet> sets = shared ? overlapping(config) : halves(config);
            holder[0] = new InProcessGroups(dir, config, sets, 64, int8Activations);
            return new PartitionedExpertExecutor(config, sets, List.of("a", "b"), holder[0], 64);
        });
        float[] actualLogits;
        try (MoeModel split = MoeModel.load(dir, options)) {
            assertEquals(0, split.experts().byteSize(), "the router process must hold no routed expert");
            actualLogits = run(split, actual);
        } finally {
            if (holder[0] != null) holder[0].close();
        }
        assertTrue(holder[0].calls > 0, "the groups were never called");
        assertArrayEquals(expected, actual, arch + ": greedy continuation changed when experts were split");
        if (config.moe().topK() <= 2) {
            assertArrayEquals(expectedLogits, actualLogits, arch + ": top-2 routing must be bit-identical when split");
        } else {
            for (int i = 0; i < expectedLogits.length; i++) {
                assertEquals(expectedLogits[i], actualLogits[i], 1e-5f + 1e-5f * Math.abs(expectedLogits[i]), arch + ": logit " + i);
            }
        }
    }

    @Test
    void aHoleInTheExpertMapIsAnErrorAtConstruction() {
        ModelConfig config = ConfigParser.load(TinyModels.checkpoint(Architecture.MIXTRAL));
        ExpertBatchDispatcher none = (step, layer, batches) -> { };
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new PartitionedExpertExecutor(config,
                List.of(ExpertSet.parse("*:0-2")), List.of("only"), none, 8));
        assertTrue(e.getMessage().contains("expert 3 of layer 0 is hosted by no expert group"), e.getMessage());
    }

    /** Group b (experts 4-7) answers nothing and leaves garbage in its output; group a computes its batch. */
    private static ExpertBatchDispatcher groupBDown(InProcessGroups groups) {
        return (step, layer, batches) -> {
            ExpertBatch a = batches[0];
            if (a.size() > 0) groups.groups.get(0).computeExperts(step, layer, a.size(), a.k(), a.x, a.experts, a.weights, a.out);
            java.util.Arrays.fill(batches[1].out, Float.NaN);
            throw new ExpertUnavailableException(layer, "b", java.util.Arrays.copyOf(batches[1].rows, batches[1].size()),
                    new int[] {1}, "expert group b could not compute layer " + layer, null);
        };
    }

    @Test
    void degradedModeMasksTheFailedGroupsExpertsAndRenormalisesTheRest() {
        Path dir = TinyModels.checkpoint(Architecture.MIXTRAL);
        ModelConfig config = ConfigParser.load(dir);
        int h = config.hiddenSize();
        int k = config.moe().topK();
        assertEquals(2, k);
        List<ExpertSet> sets = halves(config); // a: 0-3, b: 4-7
        // Token 0 loses one of two experts, token 1 none, token 2 both, token 3 one; the weights sum to 1.2, not 1,
        // as a routed_scaling_factor or an unnormalised top-k leaves them, so the rule's "sum kept" is visible.
        int[] experts = {1, 5, 0, 2, 4, 6, 6, 3};
        float[] weights = {0.7f, 0.5f, 0.9f, 0.3f, 0.6f, 0.6f, 0.2f, 1.0f};
        int n = 4;
        float[] x = new float[n * h];
        java.util.Random random = new java.util.Random(13);
        for (int i = 0; i < x.length; i++) x[i] = (float) random.nextGaussian();
        // What one process computes with the masked experts dropped and the kept weights scaled to the chosen sum.
        int[] keptExperts = {1, -1, 0, 2, -1, -1, -1, 3};
        float[] keptWeights = {0.7f * 1.2f / 0.7f, 0f, 0.9f, 0.3f, 0f, 0f, 0f, 1.0f * 1.2f / 1.0f};
        float[] expected = new float[n * h];
        List<int[]> masked = new ArrayList<>();
        float[] actual = new float[n * h];
        try (Checkpoint ck = Checkpoint.open(dir)) {
            LocalExpertExecutor all = new LocalExpertExecutor(ExpertLoader.loadHosted(config, ck, ExpertSet.parse("*")),
                    new CpuMatmulKernels(Parallel.shared()), 16, k);
            all.computeExperts(0, 0, n, k, x, keptExperts, keptWeights, expected);
        }
        java.util.Arrays.fill(expected, 2 * h, 3 * h, 0f); // every expert of token 2 masked: zero routed output
        InProcessGroups groups = new InProcessGroups(dir, config, sets, 16, false);
        try {
            PartitionedExpertExecutor p = new PartitionedExpertExecutor(config, sets, List.of("a", "b"), groupBDown(groups), 16,
                    (layer, group, row, pairs) -> masked.add(new int[] {layer, group, row, pairs}));
            p.computeExperts(1, 0, n, k, x, experts, weights, actual);

            for (int i = 0; i < n * h; i++) {
                assertEquals(expected[i], actual[i], 1e-5f + 1e-5f * Math.abs(expected[i]), "row " + i / h + " element " + i % h);
            }
            assertEquals(List.of("0 1 0 1", "0 1 2 2", "0 1 3 1"),
                    masked.stream().map(m -> m[0] + " " + m[1] + " " + m[2] + " " + m[3]).toList(), "(layer, group, row, pairs) masked");

            PartitionedExpertExecutor failing = new PartitionedExpertExecutor(config, sets, List.of("a", "b"), groupBDown(groups), 16);
            ExpertUnavailableException e = assertThrows(ExpertUnavailableException.class,
                    () -> failing.computeExperts(1, 0, n, k, x, experts, weights, new float[n * h]));
            assertArrayEquals(new int[] {0, 2, 3}, e.rows(), "without degraded mode the call fails as before");
        } finally {
            groups.close();
        }
    }

    @Test
    void degradedModeRethrowsWhenTheDispatcherDoesNotSayWhichGroupFailed() {
        ModelConfig config = ConfigParser.load(TinyModels.checkpoint(Architecture.MIXTRAL));
        ExpertBatchDispatcher vague = (step, layer, batches) -> {
            throw new ExpertUnavailableException(layer, "b", new int[] {0}, "down", null);
        };
        PartitionedExpertExecutor p = new PartitionedExpertExecutor(config, halves(config), List.of("a", "b"), vague, 4,
                (layer, group, row, pairs) -> { });
        int h = config.hiddenSize();
        assertThrows(ExpertUnavailableException.class,
                () -> p.computeExperts(1, 0, 1, 2, new float[h], new int[] {1, 5}, new float[] {0.5f, 0.5f}, new float[h]));
    }

    @Test
    void replicatedExpertsAreSpreadOverTheGroupsThatHostThem() {
        Path dir = TinyModels.checkpoint(Architecture.MIXTRAL);
        ModelConfig config = ConfigParser.load(dir);
        List<ExpertSet> sets = List.of(ExpertSet.parse("*"), ExpertSet.parse("*"));
        InProcessGroups groups = new InProcessGroups(dir, config, sets, 64, false);
        int[] perGroupPairs = new int[2];
        List<String> split = new ArrayList<>();
        ExpertBatchDispatcher counting = (step, layer, batches) -> {
            for (int g = 0; g < 2; g++) perGroupPairs[g] += batches[g].pairs();
            for (int e = 0; e < config.moe().numFfnExperts(); e++) {
                if (holds(batches[0], e) && holds(batches[1], e)) split.add("layer " + layer + " expert " + e);
            }
            groups.dispatch(step, layer, batches);
        };
        try (MoeModel model = MoeModel.load(dir, TinyModels.options(64).withExecutor(ExpertSelection.NONE,
                store -> new PartitionedExpertExecutor(config, sets, List.of("a", "b"), counting, 64)))) {
            run(model, new int[4]);
        } finally {
            groups.close();
        }
        assertTrue(perGroupPairs[0] > 0 && perGroupPairs[1] > 0, "both replicas of the experts got work");
        assertTrue(Math.abs(perGroupPairs[0] - perGroupPairs[1]) <= perGroupPairs[0] / 2 + 2,
                "work is balanced: " + perGroupPairs[0] + " vs " + perGroupPairs[1]);
        assertEquals(List.of(), split, "an expert's tokens of one call go to one group");
    }

    @Test
    void replicatedExpertsGoWholeToTheLeastLoadedGroupMostTokensFirst() {
        ModelConfig config = ConfigParser.load(TinyModels.checkpoint(Architecture.MIXTRAL));
        int e = config.moe().numFfnExperts();
        int k = config.moe().topK();
        assertTrue(e >= 4 && k == 2, "the test assumes a top-2 model with at least 4 experts");
        // Group a hosts 0..e-2, group b hosts 1..e-1: expert 0 only on a, e-1 only on b, the rest on both.
        List<ExpertSet> sets = List.of(ExpertSet.parse("*:0-" + (e - 2)), ExpertSet.parse("*:1-" + (e - 1)));
        List<int[]> expertsPerGroup = new ArrayList<>();
        ExpertBatchDispatcher recording = (step, layer, batches) -> {
            expertsPerGroup.clear();
            for (ExpertBatch b : batches) {
                expertsPerGroup.add(java.util.stream.IntStream.range(0, e).filter(x -> holds(b, x)).toArray());
            }
        };
        PartitionedExpertExecutor p = new PartitionedExpertExecutor(config, sets, List.of("a", "b"), recording, 16);
        int h = config.hiddenSize();
        // 8 tokens: expert 0 (only a) in every one, so a starts at cost(8) = 3; expert 1 in 5 tokens (cost 3), 2 in 3 (cost 2).
        int[] experts = {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 2, 0, 2, 0, 2};
        float[] weights = new float[experts.length];
        java.util.Arrays.fill(weights, 0.5f);
        p.computeExperts(1, 0, 8, k, new float[8 * h], experts, weights, new float[8 * h]);
        // b is empty, so expert 1 (most tokens) goes to b (0 < 3); then expert 2: a and b both at 3, the tie to a.
        assertArrayEquals(new int[] {0, 2}, expertsPerGroup.get(0));
        assertArrayEquals(new int[] {1}, expertsPerGroup.get(1));
        // Now expert e-1 (only b, cost 3) is heavy: experts 1 and 2 (4 tokens each, cost 2) both go to a (0, then 2 < 3).
        int last = e - 1;
        int[] heavyOnB = {last, 1, last, 1, last, 1, last, 2, last, 2, last, 2, last, 1, last, 2};
        p.computeExperts(1, 0, 8, k, new float[8 * h], heavyOnB, weights, new float[8 * h]);
        assertArrayEquals(new int[] {1, 2}, expertsPerGroup.get(0));
        assertArrayEquals(new int[] {last}, expertsPerGroup.get(1));
        // Equal loads go to the lower group: one token, experts 1 and 2 both shared; 1 goes to a (tie), then 2 to b.
        p.computeExperts(1, 0, 1, k, new float[h], new int[] {1, 2}, new float[] {0.5f, 0.5f}, new float[h]);
        assertArrayEquals(new int[] {1}, expertsPerGroup.get(0));
        assertArrayEquals(new int[] {2}, expertsPerGroup.get(1));
    }

    private static boolean holds(ExpertBatch b, int expert) {
        for (int i = 0; i < b.size() * b.k(); i++) if (b.experts[i] == expert) return true;
        return false;
    }

    @Test
    void aPodLoadsOnlyItsExperts() {
        Path dir = TinyModels.checkpoint(Architecture.QWEN3_MOE);
        ModelConfig config = ConfigParser.load(dir);
        try (Checkpoint ck = Checkpoint.open(dir)) {
            CheckpointExpertStore store = ExpertLoader.loadHosted(config, ck, ExpertSet.parse("*:1,3"));
            for (int l = 0; l < config.numLayers(); l++) {
                int[] expected = config.isSparse(l) ? new int[] {1, 3} : new int[0];
                assertArrayEquals(expected, store.hostedExperts(l), "layer " + l);
            }
            assertTrue(store.prefault() > 0);
            // Only the hosted experts' tensors were touched: everything else stays unconsumed.
            assertTrue(ck.unconsumed().stream().anyMatch(n -> n.contains(".experts.0.")));
            assertTrue(ck.unconsumed().stream().noneMatch(n -> n.contains(".experts.1.")));
        }
    }
}
