package io.moeserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.generate.GenerationRequest;
import io.moeserve.runtime.generate.GenerationResult;
import io.moeserve.runtime.generate.Generator;
import io.moeserve.runtime.generate.SamplingParams;
import io.moeserve.runtime.generate.TokenListener;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * For every architecture, on a generated checkpoint: load → prefill → decode → sample, and the invariants that
 * catch real bugs in a KV-cached, batched implementation.
 */
class MoeModelInvariantsTest {
    private static final int[] PROMPT = {5, 77, 300, 12, 9, 250, 31, 4, 199, 64, 18};

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void cachedDecodeEqualsRecomputingTheWholeSequence(Architecture arch) {
        try (MoeModel model = TinyModels.load(arch, 64)) {
            KvCache cache = model.newKvCache(512, 2);
            Generator generator = new Generator(model, cache);
            GenerationResult r = generator.generate(new GenerationRequest(PROMPT, SamplingParams.GREEDY, 8, new int[0]));
            assertEquals(8, r.outputTokens().length);
            // Recompute each step from scratch: prefill prompt + outputs so far in one pass, take the argmax.
            int[] seq = Arrays.copyOf(PROMPT, PROMPT.length + r.outputTokens().length);
            System.arraycopy(r.outputTokens(), 0, seq, PROMPT.length, r.outputTokens().length);
            for (int step = 0; step < r.outputTokens().length; step++) {
                float[] logits = lastLogits(model, Arrays.copyOf(seq, PROMPT.length + step));
                assertEquals(argmax(logits), r.outputTokens()[step], arch + ": step " + step + " differs from recomputation");
            }
            float[] cached = decodeLogitsAfter(model, seq);
            float[] recomputed = lastLogits(model, seq);
            assertClose(recomputed, cached, 1e-4f, arch + ": cached decode logits");
        }
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void onePassPrefillEqualsTokenByToken(Architecture arch) {
        try (MoeModel model = TinyModels.load(arch, 64)) {
            float[] onePass = lastLogits(model, PROMPT);
            KvCache cache = model.newKvCache(512, 1);
            int slot = cache.allocateSequence();
            StepBatch batch = new StepBatch(64);
            float[] logits = new float[model.config().vocabSize()];
            for (int p = 0; p < PROMPT.length; p++) {
                batch.clear();
                batch.add(PROMPT[p], slot, p, true);
                model.forward(batch, cache, logits, RoutingObserver.NONE);
            }
            assertClose(onePass, logits, 1e-4f, arch + ": one-pass prefill vs token by token");
        }
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void chunkedPrefillEqualsOnePass(Architecture arch) {
        float[] onePass;
        try (MoeModel model = TinyModels.load(arch, 64)) {
            onePass = lastLogits(model, PROMPT);
        }
        try (MoeModel model = TinyModels.load(arch, 4)) { // prompt of 11 runs as chunks of 4, 4, 3
            assertClose(onePass, lastLogits(model, PROMPT), 1e-4f, arch + ": chunked prefill");
        }
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void batchOfDifferentLengthsEqualsEachRunAlone(Architecture arch) {
        try (MoeModel model = TinyModels.load(arch, 64)) {
            List<GenerationRequest> requests = List.of(
                    new GenerationRequest(new int[] {3, 1, 4, 1, 5, 9, 2, 6}, SamplingParams.GREEDY, 6, new int[0]),
                    new GenerationRequest(new int[] {100}, SamplingParams.GREEDY, 9, new int[0]),
                    new GenerationRequest(PROMPT, SamplingParams.GREEDY, 4, new int[0]),
                    new GenerationRequest(new int[] {7, 7}, SamplingParams.sampled(0.8f, 20, 0.9f, 0.01f, 42L), 7, new int[0]));
            KvCache cache = model.newKvCache(1024, 4);
            float[][] batchLogits = new float[4][];
            List<GenerationResult> together = new Generator(model, cache).generate(requests, TokenListener.NONE, RoutingObserver.NONE, batchLogits);
            assertEquals(0, cache.activeSequences(), "finished sequences free their cache");
            assertEquals(cache.totalBlocks(), cache.freeBlocks());
            for (int i = 0; i < requests.size(); i++) {
                float[][] aloneLogits = new float[1][];
                GenerationResult alone = new Generator(model, model.newKvCache(512, 1))
                        .generate(List.of(requests.get(i)), TokenListener.NONE, RoutingObserver.NONE, aloneLogits).getFirst();
                assertArrayEquals(alone.outputTokens(), together.get(i).outputTokens(), arch + ": sequence " + i);
                assertClose(aloneLogits[0], batchLogits[i], 1e-5f, arch + ": prompt logits of sequence " + i);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void stopTokenEndsTheSequenceAndSeededSamplingRepeats(Architecture arch) {
        try (MoeModel model = TinyModels.load(arch, 64)) {
            Generator g = new Generator(model, model.newKvCache(512, 1));
            GenerationResult greedy = g.generate(new GenerationRequest(PROMPT, SamplingParams.GREEDY, 5, new int[0]));
            int stop = greedy.outputTokens()[2];
            GenerationResult stopped = g.generate(new GenerationRequest(PROMPT, SamplingParams.GREEDY, 5, new int[] {stop}));
            int firstStop = 0;
            while (greedy.outputTokens()[firstStop] != stop) firstStop++;
            assertEquals(firstStop + 1, stopped.outputTokens().length);
            assertEquals(io.moeserve.runtime.generate.FinishReason.STOP, stopped.finishReason());
            SamplingParams sampled = SamplingParams.sampled(1.0f, 0, 1f, 0f, 7L);
            GenerationResult a = g.generate(new GenerationRequest(PROMPT, sampled, 12, new int[0]));
            GenerationResult b = g.generate(new GenerationRequest(PROMPT, sampled, 12, new int[0]));
            assertArrayEquals(a.outputTokens(), b.outputTokens(), "same seed, same tokens");
        }
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void routerPicksDistinctExpertsWithFiniteWeights(Architecture arch) {
        try (MoeModel model = TinyModels.load(arch, 64)) {
            List<String> problems = new ArrayList<>();
            RoutingObserver check = (layer, batch, k, experts, weights) -> {
                for (int t = 0; t < batch.size(); t++) {
                    for (int j = 0; j < k; j++) {
                        int e = experts[t * k + j];
                        if (e < 0 || e >= model.config().moe().numExperts()) problems.add("layer " + layer + " expert " + e);
                        if (!Float.isFinite(weights[t * k + j])) problems.add("layer " + layer + " weight " + weights[t * k + j]);
                        for (int i = 0; i < j; i++) if (experts[t * k + i] == e) problems.add("layer " + layer + " repeats " + e);
                    }
                }
            };
            KvCache cache = model.newKvCache(256, 1);
            int slot = cache.allocateSequence();
            StepBatch batch = new StepBatch(64);
            for (int p = 0; p < PROMPT.length; p++) batch.add(PROMPT[p], slot, p, p == PROMPT.length - 1);
            float[] logits = new float[model.config().vocabSize()];
            model.forward(batch, cache, logits, check);
            assertTrue(problems.isEmpty(), problems.toString());
            for (float l : logits) assertTrue(Float.isFinite(l), arch + ": non-finite logit");
        }
    }

    static float[] lastLogits(MoeModel model, int[] tokens) {
        Generator g = new Generator(model, model.newKvCache(512, 1));
        float[][] out = new float[1][];
        g.generate(List.of(new GenerationRequest(tokens, SamplingParams.GREEDY, 0, new int[0])), TokenListener.NONE, RoutingObserver.NONE, out);
        return out[0];
    }

    /** Prefills all but the last token, then decodes the last one as a single cached step. */
    private static float[] decodeLogitsAfter(MoeModel model, int[] seq) {
        KvCache cache = model.newKvCache(512, 1);
        int slot = cache.allocateSequence();
        new Generator(model, cache).prefill(Arrays.copyOf(seq, seq.length - 1), slot, RoutingObserver.NONE);
        StepBatch batch = new StepBatch(4);
        batch.add(seq[seq.length - 1], slot, seq.length - 1, true);
        float[] logits = new float[model.config().vocabSize()];
        model.forward(batch, cache, logits, RoutingObserver.NONE);
        return logits;
    }

    static int argmax(float[] a) {
        int best = 0;
        for (int i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
        return best;
    }

    static void assertClose(float[] expected, float[] actual, float tolerance, String what) {
        assertEquals(expected.length, actual.length, what + ": length");
        float worst = 0;
        int at = -1;
        for (int i = 0; i < expected.length; i++) {
            float d = Math.abs(expected[i] - actual[i]);
            if (!(d <= worst)) {
                worst = d;
                at = i;
            }
        }
        assertTrue(worst <= tolerance, what + ": max |Δ| " + worst + " at " + at + " exceeds " + tolerance);
    }
}
