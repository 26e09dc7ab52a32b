package io.moeserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.expert.CheckpointExpertStore;
import io.moeserve.runtime.expert.ExpertComputeListener;
import io.moeserve.runtime.expert.ExpertExecutor;
import io.moeserve.runtime.expert.ExpertResidency;
import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.expert.OffloadingExpertExecutor;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.merge.CheckpointMerger;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Offloading changes no bit: with a budget of nothing, of a third of the experts' bytes, or of all of them, a
 * model whose experts go through {@link OffloadingExpertExecutor} generates the tokens and prompt logits the plain
 * model does, for every architecture; after every expert call the resident bytes are within the budget and equal to
 * the set's recount, hits plus misses equal the distinct experts the kernels computed, and prefetches are used,
 * wasted or pending. Pre-gating predicts for every family whose gate is linear (all but MoE++'s).
 */
class OffloadedModelTest {
    private static final int[] PROMPT = {1, 5, 9, 2, 7, 7, 3, 11, 4, 6};

    static Stream<Arguments> architecturesAndBudgets() {
        return Stream.of(Architecture.values()).flatMap(a -> Stream.of(Arguments.of(a, 0.0), Arguments.of(a, 1 / 3.0), Arguments.of(a, 1.0)));
    }

    @ParameterizedTest
    @MethodSource("architecturesAndBudgets")
    void offloadingChangesNoBitAndKeepsItsBudget(Architecture arch, double share) {
        // gpt-oss in transformers' layout is transposed at load into owned memory (refused below); the hub's MXFP4 is mapped.
        Path dir = arch == Architecture.GPT_OSS ? TinyModels.mxfp4Checkpoint() : TinyModels.checkpoint(arch);
        int[] expected = new int[12];
        float[] expectedLogits;
        try (MoeModel plain = MoeModel.load(dir, TinyModels.options(16))) {
            expectedLogits = TinyModels.greedy(plain, PROMPT, expected);
        }
        Checked[] checked = new Checked[1];
        ModelOptions options = TinyModels.options(16);
        int topK = ConfigParser.load(dir).moe().topK();
        int[] out = new int[expected.length];
        float[] logits;
        try (MoeModel offloaded = MoeModel.load(dir, options.withExecutor(ExpertSelection.ALL, store -> {
            Checked c = new Checked();
            long total = ((CheckpointExpertStore) store).byteSize();
            c.offloading = OffloadingExpertExecutor.local(store, options.kernels(), 16, topK, (long) (share * total), true, c);
            checked[0] = c;
            return c;
        }))) {
            logits = TinyModels.greedy(offloaded, PROMPT, out);
        } finally {
            if (checked[0] != null) checked[0].offloading.close();
        }
        assertArrayEquals(expected, out, arch + " at " + share + " of the experts: tokens");
        assertArrayEquals(expectedLogits, logits, arch + " at " + share + " of the experts: prompt logits");
        Checked c = checked[0];
        ExpertResidency r = c.offloading.residency();
        assertTrue(c.calls > 0);
        assertEquals(c.computed, r.hits() + r.misses(), r.report());
        if (share == 0) assertEquals(0, r.hits() + r.prefetches(), r.report());
        if (share == 1) assertEquals(0, r.evictions(), r.report());
        if (share > 0 && arch != Architecture.MOE_PLUS_PLUS) assertTrue(r.prefetches() > 0, "no prefetch: " + r.report());
        if (arch == Architecture.MOE_PLUS_PLUS) assertEquals(0, r.prefetches(), "MoE++'s gate keeps state; it cannot predict");
    }

    @Test
    void aMergedCheckpointPrefetchesItsMergedExperts(@TempDir Path tmp) {
        // Pre-gating applies the next layer's gate, whose outputs are the original experts: the prediction must go
        // through that layer's alias table, or the executor would be asked for experts it does not have.
        Path source = TinyModels.checkpoint(Architecture.MIXTRAL);
        var config = ConfigParser.load(source);
        int n = config.moe().numExperts();
        double[][] importance = new double[config.numLayers()][n];
        for (double[] layer : importance) for (int e = 0; e < n; e++) layer[e] = 1 + e;
        Path dir = tmp.resolve("merged");
        CheckpointMerger.write(source, dir, CheckpointMerger.groups(source, importance, n - 3), importance, true);
        int[] expected = new int[12];
        float[] expectedLogits;
        try (MoeModel plain = MoeModel.load(dir, TinyModels.options(16))) {
            expectedLogits = TinyModels.greedy(plain, PROMPT, expected);
        }
        ModelOptions options = TinyModels.options(16);
        Checked c = new Checked();
        int[] out = new int[expected.length];
        float[] logits;
        try (MoeModel offloaded = MoeModel.load(dir, options.withExecutor(ExpertSelection.ALL, store -> {
            c.offloading = OffloadingExpertExecutor.local(store, options.kernels(), 16, config.moe().topK(),
                    ((CheckpointExpertStore) store).byteSize() / 3, true, c);
            return c;
        }))) {
            logits = TinyModels.greedy(offloaded, PROMPT, out);
        } finally {
            if (c.offloading != null) c.offloading.close();
        }
        assertArrayEquals(expected, out);
        assertArrayEquals(expectedLogits, logits);
        assertTrue(c.offloading.residency().prefetches() > 0, c.offloading.residency().report());
        assertTrue(c.highestPredicted >= 0 && c.highestPredicted < n - 3, "predicted expert " + c.highestPredicted + " of " + (n - 3));
    }

    @Test
    void expertsTransposedIntoOwnedMemoryAreRefused() {
        ModelOptions options = TinyModels.options(16);
        var e = assertThrows(IllegalArgumentException.class, () -> MoeModel.load(TinyModels.checkpoint(Architecture.GPT_OSS),
                options.withExecutor(ExpertSelection.ALL, store -> OffloadingExpertExecutor.local(store, options.kernels(), 16, 4, 1 << 20, true,
                        ExpertComputeListener.NONE))));
        assertTrue(e.getMessage().contains("mapped from the checkpoint"), e.getMessage());
    }

    /** The offloading executor, with the invariants checked after each of its calls. */
    private static final class Checked implements ExpertExecutor, ExpertComputeListener {
        OffloadingExpertExecutor offloading;
        int highestPredicted = -1;
        long computed;
        long calls;

        @Override
        public void computeExperts(long step, int layer, int n, int k, float[] x, int[] experts, float[] weights, float[] out) {
            offloading.computeExperts(step, layer, n, k, x, experts, weights, out);
            calls++;
            ExpertResidency r = offloading.residency();
            assertTrue(r.residentBytes() <= r.budgetBytes(), r.report());
            assertEquals(r.residentBytesRecounted(), r.residentBytes());
            assertEquals(computed, r.hits() + r.misses(), r.report());
            assertEquals(r.prefetches(), r.prefetchesUsed() + r.prefetchesWasted() + r.prefetchesPending(), r.report());
        }

        @Override
        public void prefetch(int layer, int n, int k, int[] experts) {
            for (int i = 0; i < n * k; i++) highestPredicted = Math.max(highestPredicted, experts[i]);
            offloading.prefetch(layer, n, k, experts);
        }

        @Override
        public boolean prefetches() {
            return true;
        }

        @Override
        public void onExpertComputed(int layer, int expert, int tokens, long nanos) {
            computed++;
        }
    }
}
