package io.moeserve.runtime.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.KvCacheDtype;
import io.moeserve.runtime.model.KvCacheFullException;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.RoutingObserver;
import io.moeserve.runtime.model.TinyModels;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The loop's contract as the router's engine uses it: joining between steps, and a failed step that commits nothing. */
class GenerationLoopTest {
    private static final int[] A = {3, 1, 4, 1, 5, 9, 2, 6};
    private static final int[] B = {100, 7};

    private static int[] alone(MoeModel model, int[] prompt, int maxNew) {
        var request = new GenerationRequest(prompt, SamplingParams.GREEDY, maxNew, new int[0]);
        return new Generator(model, model.newKvCache(512, 1)).generate(request).outputTokens();
    }

    private static Sequence greedy(MoeModel model, int[] prompt, int maxNew) {
        return sequence(model, prompt, maxNew, SamplingParams.GREEDY);
    }

    private static Sequence sequence(MoeModel model, int[] prompt, int maxNew, SamplingParams sampling) {
        return new Sequence(prompt, maxNew, new Sampler(sampling, model.config().vocabSize(), prompt), new int[0]);
    }

    private static int[] alone(MoeModel model, int[] prompt, int maxNew, SamplingParams sampling) {
        var request = new GenerationRequest(prompt, sampling, maxNew, new int[0]);
        return new Generator(model, model.newKvCache(512, 1)).generate(request).outputTokens();
    }

    /** Seeded sampling with every penalty on: the sampler's generator and counts must go on across a preemption. */
    private static final SamplingParams SEEDED = new SamplingParams(1.1f, 40, 0.95f, 0f, 1.2f, 0.3f, 0.2f, 11L);

    private static int[] prompt(int i) {
        int[] p = new int[8 + i];
        for (int j = 0; j < p.length; j++) p[j] = (j * 31 + i * 17 + 3) % 200;
        return p;
    }

    /**
     * The engine's schedule in little: preempted sequences first, then the waiting ones, each admitted while its
     * prompt fits; steps until everything has ended.
     */
    private static void runAll(GenerationLoop loop, java.util.ArrayDeque<Sequence> waiting) {
        for (int steps = 0; !waiting.isEmpty() || !loop.running().isEmpty(); steps++) {
            assertTrue(steps < 10_000, "the loop makes progress");
            while (!waiting.isEmpty() && (loop.running().isEmpty() || loop.fits(waiting.peekFirst(), 0))) {
                assertTrue(loop.admit(waiting.pollFirst()));
            }
            loop.step();
            for (Sequence s; (s = loop.pollPreempted()) != null; ) waiting.addFirst(s);
        }
    }

    @Test
    void admissionByUseTakesMoreSequencesThanReservingTheirWholeLengthAndPreemptionKeepsTheirOutput() {
        // 8 blocks of 16 positions. Each sequence may grow to 8 + i + 40 positions (3-4 blocks): reserving that up
        // front admits 2; by what the prompts take (one block each), all 6 are admitted, and as they grow the pool
        // runs dry, so the youngest are preempted and recomputed; each ends with its unpreempted output.
        try (MoeModel model = TinyModels.load(Architecture.MIXTRAL, 16)) {
            for (SamplingParams sampling : List.of(SamplingParams.GREEDY, SEEDED)) {
                KvCache cache = model.newKvCache(128, 6);
                assertEquals(8, cache.totalBlocks());
                GenerationLoop loop = new GenerationLoop(model, cache, 6, RoutingObserver.NONE);
                List<Sequence> all = new java.util.ArrayList<>();
                int upFront = 0;
                int reserved = 0;
                for (int i = 0; i < 6; i++) {
                    Sequence s = sequence(model, prompt(i), 40, sampling);
                    all.add(s);
                    reserved += cache.blocksFor(s.prompt().length + 40);
                    if (reserved <= cache.totalBlocks()) upFront++;
                    assertTrue(loop.fits(s, 0), "sequence " + i + "'s prompt fits");
                    assertTrue(loop.admit(s));
                }
                assertEquals(2, upFront, "what reserving prompt + max new tokens admitted");
                assertEquals(6, loop.running().size());
                assertFalse(loop.fits(sequence(model, prompt(0), 40, sampling), 3), "6 blocks pending + 1 leave no watermark of 3");
                runAll(loop, new java.util.ArrayDeque<>());
                assertTrue(loop.preemptions() > 0, "the cache is too small for all six to grow");
                for (int i = 0; i < 6; i++) {
                    Sequence s = all.get(i);
                    assertEquals(FinishReason.LENGTH, s.finishReason(), "sequence " + i + " did not fail");
                    assertArrayEquals(alone(model, prompt(i), 40, sampling), s.generated(), "sequence " + i + " (" + s.preemptions()
                            + " preemptions, " + sampling + ")");
                }
                assertEquals(0, all.getFirst().preemptions(), "the oldest is never preempted");
                assertTrue(all.getLast().preemptions() > 0, "the youngest is");
                assertEquals(0, cache.activeSequences());
                assertEquals(cache.totalBlocks(), cache.freeBlocks());
            }
        }
    }

    @Test
    void preemptionKeepsTheOutputWithABf16Cache() {
        // As above, with keys and values stored as BF16: a preempted sequence's recomputed positions round to the
        // same halves, so it ends as it would alone.
        try (MoeModel model = MoeModel.load(TinyModels.checkpoint(Architecture.MIXTRAL),
                TinyModels.options(16).withKvCacheDtype(KvCacheDtype.BF16))) {
            KvCache cache = model.newKvCache(128, 6);
            assertEquals(KvCacheDtype.BF16, cache.dtype());
            GenerationLoop loop = new GenerationLoop(model, cache, 6, RoutingObserver.NONE);
            java.util.ArrayDeque<Sequence> waiting = new java.util.ArrayDeque<>();
            List<Sequence> all = new java.util.ArrayList<>();
            for (int i = 0; i < 6; i++) {
                Sequence s = sequence(model, prompt(i), 40, SEEDED);
                all.add(s);
                waiting.add(s);
            }
            runAll(loop, waiting);
            assertTrue(loop.preemptions() > 0, "the cache is too small for all six to grow");
            for (int i = 0; i < 6; i++) {
                Sequence s = all.get(i);
                assertEquals(FinishReason.LENGTH, s.finishReason(), "sequence " + i + " did not fail");
                assertArrayEquals(alone(model, prompt(i), 40, SEEDED), s.generated(), "sequence " + i + " (" + s.preemptions() + " preemptions)");
            }
        }
    }

    @Test
    void aSequenceLongerThanTheWholeCacheFailsRatherThanPreemptingItself() {
        try (MoeModel model = TinyModels.load(Architecture.MIXTRAL, 16)) {
            KvCache cache = model.newKvCache(32, 2);
            GenerationLoop loop = new GenerationLoop(model, cache, 2, RoutingObserver.NONE);
            Sequence a = greedy(model, A, 40);
            Sequence b = greedy(model, B, 40);
            assertTrue(loop.admit(a));
            assertTrue(loop.admit(b));
            KvCacheFullException e = assertThrows(KvCacheFullException.class, () -> {
                for (int i = 0; i < 100; i++) loop.step();
            });
            assertEquals(a.slot(), e.slot(), "the oldest, alone once the younger was preempted");
            assertEquals(33, a.length(), "it had filled both blocks");
            assertEquals(b, loop.pollPreempted());
            assertEquals(Sequence.Phase.WAITING, b.phase());
            assertEquals(-1, b.slot());
        }
    }

    @Test
    void aPreemptedSequenceCanBeEndedWhileItWaits() {
        try (MoeModel model = TinyModels.load(Architecture.MIXTRAL, 16)) {
            KvCache cache = model.newKvCache(48, 2);
            GenerationLoop loop = new GenerationLoop(model, cache, 2, RoutingObserver.NONE);
            Sequence a = greedy(model, A, 30);
            Sequence b = greedy(model, B, 30);
            assertTrue(loop.admit(a));
            assertTrue(loop.admit(b));
            while (loop.preemptions() == 0) loop.step();
            loop.end(b);
            assertEquals(Sequence.Phase.DONE, b.phase());
            assertNull(loop.pollPreempted(), "an ended sequence is not handed back");
            while (!loop.running().isEmpty()) loop.step();
            assertArrayEquals(alone(model, A, 30), a.generated());
            assertEquals(cache.totalBlocks(), cache.freeBlocks());
        }
    }

    @Test
    void aSequenceAdmittedBetweenStepsGeneratesWhatItWouldAlone() {
        try (MoeModel model = TinyModels.load(Architecture.MIXTRAL, 16)) {
            KvCache cache = model.newKvCache(1024, 4);
            GenerationLoop loop = new GenerationLoop(model, cache, 4, RoutingObserver.NONE);
            Sequence a = greedy(model, A, 8);
            Sequence b = greedy(model, B, 5);
            assertTrue(loop.admit(a));
            loop.step();
            loop.step();
            assertTrue(loop.admit(b));
            while (!loop.running().isEmpty()) loop.step();
            assertArrayEquals(alone(model, A, 8), a.generated());
            assertArrayEquals(alone(model, B, 5), b.generated());
            assertEquals(FinishReason.LENGTH, a.finishReason());
            assertEquals(0, cache.activeSequences(), "ended sequences free their slots");
        }
    }

    @Test
    void aFailedStepCommitsNothingSoTheOthersGoOnAfterItsRowsEnd() {
        try (MoeModel model = TinyModels.load(Architecture.QWEN2_MOE, 16)) {
            KvCache cache = model.newKvCache(1024, 4);
            boolean[] failNext = {false};
            RoutingObserver faulty = (layer, batch, k, experts, weights) -> {
                if (failNext[0] && layer > 0) {
                    failNext[0] = false;
                    throw new IllegalStateException("an expert group is down");
                }
            };
            GenerationLoop loop = new GenerationLoop(model, cache, 4, faulty);
            Sequence a = greedy(model, A, 6);
            Sequence b = greedy(model, B, 6);
            assertTrue(loop.admit(a));
            assertTrue(loop.admit(b));
            loop.step();
            loop.step();
            int before = a.generatedCount();
            failNext[0] = true;
            assertThrows(IllegalStateException.class, loop::step);
            assertEquals(before, a.generatedCount(), "no token was sampled by the failed step");
            loop.end(b);
            assertEquals(Sequence.Phase.DONE, b.phase());
            assertNull(b.finishReason(), "ended from outside, not finished");
            assertFalse(loop.running().contains(b));
            while (!loop.running().isEmpty()) loop.step();
            assertArrayEquals(alone(model, A, 6), a.generated(), "the failed step's positions were rewritten");
            assertEquals(0, cache.activeSequences());
        }
    }

    @Test
    void promptLogitsWithoutNewTokensEndTheSequenceWithLength() {
        try (MoeModel model = TinyModels.load(Architecture.OLMOE, 16)) {
            float[][] logits = new float[1][];
            var request = new GenerationRequest(A, SamplingParams.GREEDY, 0, new int[0]);
            GenerationResult r = new Generator(model, model.newKvCache(512, 1))
                    .generate(List.of(request), TokenListener.NONE, RoutingObserver.NONE, logits).getFirst();
            assertEquals(0, r.outputTokens().length);
            assertEquals(FinishReason.LENGTH, r.finishReason());
            assertEquals(model.config().vocabSize(), logits[0].length);
        }
    }
}
