package io.moeserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.generate.GenerationRequest;
import io.moeserve.runtime.generate.Generator;
import io.moeserve.runtime.generate.SamplingParams;
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
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

        InProcessGroups(Path dir, ModelConfig config, List<ExpertSet> sets, int maxTokens) {
            for (ExpertSet s : sets) {
                Checkpoint ck = Checkpoint.open(dir);
                checkpoints.add(ck);
                CheckpointExpertStore store = ExpertLoader.loadHosted(config, ck, s);
                groups.add(new LocalExpertExecutor(store, new CpuMatmulKernels(Parallel.shared()), maxTokens, config.moe().topK()));
            }
        }

        @Override
        public void dispatch(int layer, ExpertBatch[] batches) {
            for (int g = 0; g < batches.length; g++) {
                ExpertBatch b = batches[g];
                if (b.size() == 0) continue;
                calls++;
                groups.get(g).computeExperts(layer, b.size(), b.k(), b.x, b.experts, b.weights, b.out);
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

    private static float[] run(MoeModel model, int[] out) {
        KvCache cache = model.newKvCache(512, 1);
        Generator g = new Generator(model, cache);
        float[][] promptLogits = new float[1][];
        int[] tokens = g.generate(List.of(new GenerationRequest(PROMPT, SamplingParams.GREEDY, out.length, new int[0])),
                (s, t) -> { }, RouterObserver.NONE, promptLogits).getFirst().outputTokens();
        System.arraycopy(tokens, 0, out, 0, tokens.length);
        return promptLogits[0];
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void twoGroupsComputeWhatOneProcessComputes(Architecture arch) {
        Path dir = TinyModels.checkpoint(arch);
        int[] expected = new int[10];
        int[] actual = new int[10];
        float[] expectedLogits;
        try (MoeModel local = TinyModels.load(arch, 64)) {
            expectedLogits = run(local, expected);
        }
        ModelConfig config = ConfigParser.load(dir);
        InProcessGroups[] holder = new InProcessGroups[1];
        ModelOptions options = TinyModels.options(64).withExecutor(ExpertSelection.NONE, store -> {
            List<ExpertSet> sets = halves(config);
            holder[0] = new InProcessGroups(dir, config, sets, 64);
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
        ExpertBatchDispatcher none = (layer, batches) -> { };
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new PartitionedExpertExecutor(config,
                List.of(ExpertSet.parse("*:0-2")), List.of("only"), none, 8));
        assertTrue(e.getMessage().contains("expert 3 of layer 0 is hosted by no expert group"), e.getMessage());
    }

    @Test
    void replicatedExpertsAreSpreadOverTheGroupsThatHostThem() {
        Path dir = TinyModels.checkpoint(Architecture.MIXTRAL);
        ModelConfig config = ConfigParser.load(dir);
        List<ExpertSet> sets = List.of(ExpertSet.parse("*"), ExpertSet.parse("*"));
        InProcessGroups groups = new InProcessGroups(dir, config, sets, 64);
        int[] perGroupPairs = new int[2];
        ExpertBatchDispatcher counting = (layer, batches) -> {
            for (int g = 0; g < 2; g++) perGroupPairs[g] += batches[g].pairs();
            groups.dispatch(layer, batches);
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
