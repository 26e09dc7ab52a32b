package io.moeserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.expert.ExpertExecutor;
import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.expert.LocalExpertExecutor;
import io.moeserve.runtime.family.Architecture;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Dynamic expert skipping in the whole model, for every architecture: threshold 0 leaves every logit bit as it
 * was, however it is set; with skipping on, a skipped (token, expert) pair never reaches the expert executor and
 * the executor gets the token's whole routed mass on the experts that stay.
 */
class ExpertSkippingTest {
    private static final int[] PROMPT = {5, 77, 300, 12, 9, 250, 31, 4, 199, 64, 18};

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void thresholdZeroIsBitForBitTheModelWithoutSkipping(Architecture arch) {
        float[] plain;
        try (MoeModel model = TinyModels.load(arch, 64)) {
            plain = allLogits(model, Float.NaN);
        }
        ModelOptions on = TinyModels.options(64).withSkipping(new ExpertSkipping(0.9f, 0.02f));
        try (MoeModel model = MoeModel.load(TinyModels.checkpoint(arch), TinyModels.options(64).withSkipping(new ExpertSkipping(0f, 0.5f)))) {
            assertArrayEquals(plain, allLogits(model, Float.NaN), arch + ": deployment threshold 0");
        }
        try (MoeModel model = MoeModel.load(TinyModels.checkpoint(arch), on)) {
            assertArrayEquals(plain, allLogits(model, 0f), arch + ": a request's threshold 0 under a deployment's 0.9");
            float[] skipping = allLogits(model, Float.NaN);
            boolean differs = false;
            for (int i = 0; i < plain.length; i++) differs |= plain[i] != skipping[i];
            assertTrue(differs, arch + ": threshold 0.9 changes the output (else the comparisons above prove nothing)");
        }
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void aSkippedPairNeverReachesTheExecutorAndTheRestKeepTheTokensMass(Architecture arch) {
        Map<Integer, int[]> executed = new HashMap<>();
        Map<Integer, float[]> executedWeights = new HashMap<>();
        ModelOptions base = TinyModels.options(64);
        ModelOptions options = base.withSkipping(new ExpertSkipping(0.9f, 0f))
                .withExecutor(ExpertSelection.ALL, store -> new ExpertExecutor() {
                    private final LocalExpertExecutor local = new LocalExpertExecutor(store, base.kernels(), 64, topK(arch));

                    @Override
                    public void computeExperts(long step, int layer, int n, int k, float[] x, int[] experts, float[] weights, float[] out) {
                        executed.put(layer, Arrays.copyOf(experts, n * k));
                        executedWeights.put(layer, Arrays.copyOf(weights, n * k));
                        local.computeExperts(step, layer, n, k, x, experts, weights, out);
                    }
                });
        Map<Integer, int[]> chosen = new HashMap<>();
        Map<Integer, float[]> gateWeights = new HashMap<>();
        Map<Integer, int[]> skipped = new HashMap<>();
        long[] skippedPairs = new long[1];
        RoutingObserver observer = new RoutingObserver() {
            @Override
            public void onRouting(int layer, StepBatch batch, int k, int[] experts, float[] weights) {
                chosen.put(layer, Arrays.copyOf(experts, batch.size() * k));
                gateWeights.put(layer, Arrays.copyOf(weights, batch.size() * k));
            }

            @Override
            public void onSkipped(int layer, StepBatch batch, int k, int[] experts, int[] dropped, int pairs) {
                skipped.put(layer, Arrays.copyOf(dropped, batch.size() * k));
                int count = 0;
                for (int i = 0; i < batch.size() * k; i++) if (dropped[i] >= 0) count++;
                assertEquals(count, pairs, "pairs counts the dropped slots");
                skippedPairs[0] += pairs;
            }
        };
        try (MoeModel model = MoeModel.load(TinyModels.checkpoint(arch), options)) {
            int ffnExperts = model.config().moe().numFfnExperts();
            forward(model, Float.NaN, observer);
            assertTrue(skippedPairs[0] > 0, arch + ": threshold 0.9 skips something");
            assertEquals(chosen.keySet(), executed.keySet());
            for (int layer : chosen.keySet()) {
                int[] gate = chosen.get(layer);
                int[] ran = executed.get(layer);
                int[] dropped = skipped.getOrDefault(layer, new int[0]);
                int k = gate.length / PROMPT.length;
                for (int i = 0; i < gate.length; i++) {
                    boolean wasSkipped = dropped.length > 0 && dropped[i] >= 0;
                    int expected = wasSkipped || gate[i] >= ffnExperts ? -1 : gate[i];
                    assertEquals(expected, ran[i], arch + " layer " + layer + " slot " + i);
                }
                float[] before = gateWeights.get(layer);
                float[] after = executedWeights.get(layer);
                for (int t = 0; t < PROMPT.length; t++) {
                    float sumBefore = 0f;
                    float sumAfter = 0f;
                    for (int j = 0; j < k; j++) {
                        sumBefore += before[t * k + j];
                        sumAfter += after[t * k + j];
                        if (dropped.length > 0 && dropped[t * k + j] >= 0) assertEquals(0f, after[t * k + j]);
                    }
                    assertEquals(sumBefore, sumAfter, 1e-5f * Math.max(1f, Math.abs(sumBefore)), arch + " layer " + layer + " token " + t);
                }
            }
        }
    }

    private static int topK(Architecture arch) {
        return ConfigParser.load(TinyModels.checkpoint(arch)).moe().topK();
    }

    /** The prompt as one step with the given per-row threshold; every row's logits. */
    private static float[] allLogits(MoeModel model, float threshold) {
        return forward(model, threshold, RoutingObserver.NONE);
    }

    private static float[] forward(MoeModel model, float threshold, RoutingObserver observer) {
        KvCache cache = model.newKvCache(256, 1);
        int slot = cache.allocateSequence();
        StepBatch batch = new StepBatch(64);
        for (int p = 0; p < PROMPT.length; p++) batch.add(PROMPT[p], slot, p, true, threshold);
        float[] logits = new float[PROMPT.length * model.config().vocabSize()];
        model.forward(batch, cache, logits, observer);
        return logits;
    }
}
