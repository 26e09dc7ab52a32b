package io.moeserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.expert.AsyncExpertGroups;
import io.moeserve.runtime.expert.ExpertMaskListener;
import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.expert.ExpertSet;
import io.moeserve.runtime.expert.ExpertUnavailableException;
import io.moeserve.runtime.expert.PartitionedExpertExecutor;
import io.moeserve.runtime.family.Architecture;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A step split into micro-batches (ping-pong over expert groups that answer asynchronously, in any order) computes
 * the logits the unsplit step computes, bit for bit, for every architecture: prefill, decode and both mixed, with
 * splits that leave micro-batches of unequal size and a sequence whose rows are not adjacent. A group failing in
 * one micro-batch fails the step's rows that needed it, as the unsplit step does, and leaves the model usable.
 */
class MicroBatchingTest {
    private static final int MAX_TOKENS = 64;
    private static final int LANES = 3;

    static Stream<Arguments> architecturesAndSplits() {
        return Arrays.stream(Architecture.values()).flatMap(a -> Stream.of(Arguments.of(a, 2), Arguments.of(a, 3)));
    }

    @ParameterizedTest
    @MethodSource("architecturesAndSplits")
    void aSplitStepComputesTheUnsplitStepsLogits(Architecture arch, int microBatches) {
        try (Setup unsplit = new Setup(arch, 1, null); Setup split = new Setup(arch, microBatches, null)) {
            assertEquals(1, unsplit.model.microBatches());
            assertEquals(microBatches, split.model.microBatches());
            float[] expected = unsplit.runSteps();
            float[] actual = split.runSteps();
            assertArrayEquals(expected, actual, arch + ": logits of the steps split in " + microBatches);
            for (int lane = 0; lane < microBatches; lane++) {
                assertTrue(split.groups.calls(lane) > 0, "lane " + lane + " was never used");
            }
            assertEquals(0, unsplit.groups.calls(1), "an unsplit step uses one lane");
        }
    }

    @Test
    void aStepOfOneSequenceOrFewTokensIsNotSplit() {
        try (Setup split = new Setup(Architecture.MIXTRAL, 2, null)) {
            StepBatch batch = new StepBatch(MAX_TOKENS);
            batch.clear();
            for (int p = 0; p < 6; p++) batch.add(3 + p, split.slots[0], p, p == 5);
            split.model.forward(batch, split.cache, new float[split.model.config().vocabSize()], RoutingObserver.NONE);
            assertEquals(0, split.groups.calls(1), "one sequence: one micro-batch");
            batch.clear();
            batch.add(5, split.slots[0], 6, true);
            batch.add(6, split.slots[1], 0, true);
            split.model.forward(batch, split.cache, new float[2 * split.model.config().vocabSize()], RoutingObserver.NONE);
            assertTrue(split.groups.calls(1) > 0, "two sequences of a token each: two micro-batches");
        }
        try (Setup fewTokens = new Setup(Architecture.MIXTRAL, 2, null, 3)) {
            StepBatch batch = new StepBatch(MAX_TOKENS);
            batch.clear();
            batch.add(5, fewTokens.slots[0], 0, true);
            batch.add(6, fewTokens.slots[1], 0, true);
            fewTokens.model.forward(batch, fewTokens.cache, new float[2 * fewTokens.model.config().vocabSize()], RoutingObserver.NONE);
            assertEquals(0, fewTokens.groups.calls(1), "fewer tokens than the minimum: one micro-batch");
        }
    }

    @Test
    void aGroupFailingInOneMicroBatchFailsTheStepsRowsThatNeededItAndTheModelGoesOn() {
        Architecture arch = Architecture.DEEPSEEK_V3;
        try (Setup unsplit = new Setup(arch, 1, null); Setup split = new Setup(arch, 3, null)) {
            int layer = firstSparse(unsplit.model.config());
            int[] expectedRows = unsplit.failingStep(layer);
            int[] actualRows = split.failingStep(layer);
            assertTrue(expectedRows.length > 0);
            assertArrayEquals(expectedRows, actualRows, "the failure names the step's rows, whichever micro-batch met it");
            // Nothing of the failed step is left in flight: the next step computes what the unsplit model computes.
            assertArrayEquals(unsplit.mixedStep(), split.mixedStep(), "the step after a failure");
        }
    }

    @Test
    void degradedModeMasksPerMicroBatchAsItDoesTheWholeStep() {
        Architecture arch = Architecture.QWEN2_MOE;
        List<String> maskedUnsplit = new ArrayList<>();
        List<String> maskedSplit = new ArrayList<>();
        try (Setup unsplit = new Setup(arch, 1, (l, g, row, pairs) -> maskedUnsplit.add(l + " " + g + " " + row + " " + pairs));
             Setup split = new Setup(arch, 2, (l, g, row, pairs) -> maskedSplit.add(l + " " + g + " " + row + " " + pairs))) {
            unsplit.prefill();
            split.prefill();
            unsplit.groups.failing(1, l -> true);
            split.groups.failing(1, l -> true);
            assertArrayEquals(unsplit.mixedStep(), split.mixedStep(), "masked logits");
        }
        assertFalse(maskedUnsplit.isEmpty());
        maskedUnsplit.sort(null);
        maskedSplit.sort(null);
        assertEquals(maskedUnsplit, maskedSplit, "(layer, group, step row, pairs) masked");
    }

    @ParameterizedTest
    @MethodSource("architecturesAndSplits")
    void expertSkippingKeepsEachSequencesOwnThresholdInItsMicroBatch(Architecture arch, int microBatches) {
        ExpertSkipping deployment = new ExpertSkipping(0.5f, 0f);
        try (Setup unsplit = new Setup(arch, 1, null, 2, deployment); Setup split = new Setup(arch, microBatches, null, 2, deployment);
             Setup full = new Setup(arch, 1, null, 2, ExpertSkipping.OFF)) {
            float[] expected = unsplit.prefillWithThresholds();
            assertArrayEquals(expected, split.prefillWithThresholds(), arch + ": skipping split in " + microBatches);
            // The same tokens with no threshold anywhere (a request's own threshold applies whatever the deployment's).
            assertFalse(Arrays.equals(expected, full.prefill()), arch + ": the thresholds skipped nothing");
        }
    }

    private static int firstSparse(ModelConfig config) {
        for (int l = 0; l < config.numLayers(); l++) if (config.isSparse(l)) return l;
        throw new AssertionError("no MoE layer");
    }

    /** A model whose routed experts are two asynchronous groups, steps split in {@code microBatches}. */
    private static final class Setup implements AutoCloseable {
        final MoeModel model;
        final AsyncExpertGroups groups;
        final KvCache cache;
        final int[] slots = new int[5];
        final int vocab;

        Setup(Architecture arch, int microBatches, ExpertMaskListener masking) {
            this(arch, microBatches, masking, 2);
        }

        Setup(Architecture arch, int microBatches, ExpertMaskListener masking, int minTokens) {
            this(arch, microBatches, masking, minTokens, ExpertSkipping.OFF);
        }

        Setup(Architecture arch, int microBatches, ExpertMaskListener masking, int minTokens, ExpertSkipping skipping) {
            Path dir = TinyModels.checkpoint(arch);
            ModelConfig config = ConfigParser.load(dir);
            int e = config.moe().numFfnExperts();
            List<ExpertSet> sets = List.of(ExpertSet.parse("*:0-" + (e / 2 - 1)), ExpertSet.parse("*:" + (e / 2) + "-" + (e - 1)));
            groups = new AsyncExpertGroups(dir, config, sets, MAX_TOKENS, LANES);
            ModelOptions options = TinyModels.options(MAX_TOKENS)
                    .withExecutor(ExpertSelection.NONE, store -> new PartitionedExpertExecutor(config, sets, List.of("a", "b"), groups,
                            MAX_TOKENS, masking))
                    .withMicroBatches(microBatches, minTokens)
                    .withSkipping(skipping);
            model = MoeModel.load(dir, options);
            cache = model.newKvCache(1024, slots.length);
            for (int i = 0; i < slots.length; i++) slots[i] = cache.allocateSequence();
            vocab = config.vocabSize();
        }

        /** Prefill of four prompts of 4, 1, 7 and 2 tokens in one step. */
        float[] prefill() {
            StepBatch b = new StepBatch(MAX_TOKENS);
            b.clear();
            Random r = new Random(7);
            int[] lengths = {4, 1, 7, 2};
            for (int s = 0; s < lengths.length; s++) {
                for (int p = 0; p < lengths[s]; p++) b.add(r.nextInt(vocab), slots[s], p, p == lengths[s] - 1);
            }
            return step(b);
        }

        /**
         * The prefill of {@link #prefill} with each sequence's own skip threshold: the model's, none, 1 (all but the
         * top expert: random weights give near-equal gate weights, so only 1 surely skips in every family), low.
         */
        float[] prefillWithThresholds() {
            StepBatch b = new StepBatch(MAX_TOKENS);
            b.clear();
            Random r = new Random(7);
            int[] lengths = {4, 1, 7, 2};
            float[] thresholds = {Float.NaN, 0f, 1f, 0.3f};
            for (int s = 0; s < lengths.length; s++) {
                for (int p = 0; p < lengths[s]; p++) b.add(r.nextInt(vocab), slots[s], p, p == lengths[s] - 1, thresholds[s]);
            }
            return step(b);
        }

        /**
         * Decode tokens mixed with prefill chunks: sequence 0 decodes, sequence 4 starts a prompt in the middle of the
         * step, sequence 1 goes on with a chunk of 5, and sequence 2's two tokens are not adjacent.
         */
        float[] mixedStep() {
            StepBatch b = new StepBatch(MAX_TOKENS);
            b.clear();
            Random r = new Random(11);
            b.add(r.nextInt(vocab), slots[0], 4, true);
            b.add(r.nextInt(vocab), slots[2], 7, false);
            for (int p = 0; p < 3; p++) b.add(r.nextInt(vocab), slots[4], p, p == 2);
            for (int p = 1; p < 6; p++) b.add(r.nextInt(vocab), slots[1], p, p == 5);
            b.add(r.nextInt(vocab), slots[2], 8, true);
            b.add(r.nextInt(vocab), slots[3], 2, true);
            return step(b);
        }

        float[] runSteps() {
            float[] first = prefill();
            float[] second = mixedStep();
            float[] all = Arrays.copyOf(first, first.length + second.length);
            System.arraycopy(second, 0, all, first.length, second.length);
            return all;
        }

        /** Prefill, then the mixed step with group b down at {@code layer}; returns the failure's rows, sorted. */
        int[] failingStep(int layer) {
            prefill();
            groups.failing(1, l -> l == layer);
            ExpertUnavailableException e = assertThrows(ExpertUnavailableException.class, this::mixedStep);
            groups.failing(-1, l -> false);
            assertEquals(layer, e.layer());
            int[] rows = e.rows();
            Arrays.sort(rows);
            return rows;
        }

        private float[] step(StepBatch b) {
            float[] logits = new float[b.logitCount() * vocab];
            model.forward(b, cache, logits, RoutingObserver.NONE);
            return logits;
        }

        @Override
        public void close() {
            model.close();
            groups.close();
        }
    }
}
