package io.moeserve.runtime.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.model.KvCache;
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
        return new Sequence(prompt, maxNew, new Sampler(SamplingParams.GREEDY, model.config().vocabSize(), prompt), new int[0]);
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
