package io.moeserve.runtime.generate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.Set;
import org.junit.jupiter.api.Test;

class SamplerTest {
    private static float[] logits() {
        return new float[] {1.0f, 3.0f, 2.5f, -1.0f, 3.0f, 0.5f};
    }

    @Test
    void greedyTakesTheFirstMaximum() {
        Sampler s = new Sampler(SamplingParams.GREEDY, 6, null);
        assertEquals(1, s.sample(logits(), 0), "ties go to the lower id, as torch.argmax");
    }

    @Test
    void topKOfOneIsGreedyWhateverTheTemperature() {
        for (long seed = 0; seed < 20; seed++) {
            Sampler s = new Sampler(SamplingParams.sampled(5f, 1, 1f, 0f, seed), 6, null);
            int t = s.sample(logits(), 0);
            assertTrue(t == 1 || t == 4, "top-1 keeps only the tied maxima, got " + t);
        }
    }

    @Test
    void sameSeedSameTokensDifferentSeedsDiffer() {
        float[] flat = new float[1000];
        int[] a = draw(flat, 42L);
        assertEquals(java.util.Arrays.toString(a), java.util.Arrays.toString(draw(flat, 42L)));
        assertNotEquals(java.util.Arrays.toString(a), java.util.Arrays.toString(draw(flat, 43L)));
    }

    private static int[] draw(float[] logits, long seed) {
        Sampler s = new Sampler(SamplingParams.sampled(1f, 0, 1f, 0f, seed), logits.length, null);
        int[] out = new int[20];
        for (int i = 0; i < out.length; i++) out[i] = s.sample(logits.clone(), 0);
        return out;
    }

    @Test
    void topPKeepsOnlyTheNucleus() {
        // probabilities ≈ 0.6, 0.3, 0.1 (and ~0 for the rest): top_p 0.8 keeps ids 0 and 1 only.
        float[] l = {(float) Math.log(0.6), (float) Math.log(0.3), (float) Math.log(0.1), -50f, -50f};
        Set<Integer> seen = new HashSet<>();
        for (long seed = 0; seed < 300; seed++) {
            Sampler s = new Sampler(SamplingParams.sampled(1f, 0, 0.8f, 0f, seed), 5, null);
            seen.add(s.sample(l.clone(), 0));
        }
        assertEquals(Set.of(0, 1), seen);
    }

    @Test
    void minPDropsTokensFarBelowTheBest() {
        float[] l = {(float) Math.log(0.6), (float) Math.log(0.3), (float) Math.log(0.1)};
        Set<Integer> seen = new HashSet<>();
        for (long seed = 0; seed < 300; seed++) {
            Sampler s = new Sampler(SamplingParams.sampled(1f, 0, 1f, 0.2f, seed), 3, null);
            seen.add(s.sample(l.clone(), 0));
        }
        assertEquals(Set.of(0, 1), seen, "0.1 < 0.2 × 0.6 is dropped");
    }

    @Test
    void samplingFollowsTheDistribution() {
        float[] l = {(float) Math.log(0.75), (float) Math.log(0.25)};
        int zeros = 0;
        Sampler s = new Sampler(SamplingParams.sampled(1f, 0, 1f, 0f, 9L), 2, null);
        for (int i = 0; i < 4000; i++) if (s.sample(l.clone(), 0) == 0) zeros++;
        assertEquals(0.75, zeros / 4000.0, 0.03);
    }

    @Test
    void repetitionPenaltyDividesPositiveAndMultipliesNegativeLogits() {
        SamplingParams p = SamplingParams.GREEDY.withPenalties(2f, 0f, 0f);
        Sampler s = new Sampler(p, 3, new int[] {0, 2});
        float[] l = {4f, 2.5f, -1f};
        assertEquals(1, s.sample(l, 0), "4 / 2 = 2 < 2.5");
        assertEquals(-2f, l[2]);
    }

    @Test
    void frequencyAndPresencePenaltiesCountOutputTokens() {
        SamplingParams p = SamplingParams.GREEDY.withPenalties(1f, 0.5f, 1f);
        Sampler s = new Sampler(p, 3, new int[] {0});
        s.accept(0);
        s.accept(0);
        float[] l = {3f, 1.5f, 0f};
        assertEquals(1, s.sample(l, 0), "3 − 2·0.5 − 1 = 1 < 1.5");
        assertEquals(1f, l[0]);
    }

    @Test
    void aResumedSamplerContinuesTheSeededStreamWithTheSamePenalties() {
        // Request migration: a sampler told the first k tokens continues exactly as the one that sampled them.
        SamplingParams p = SamplingParams.sampled(1.5f, 0, 0.95f, 0f, 42L).withPenalties(1.1f, 0.3f, 0.2f);
        int[] prompt = {0, 5};
        Sampler uninterrupted = new Sampler(p, 6, prompt);
        int[] out = new int[40];
        for (int i = 0; i < out.length; i++) {
            out[i] = uninterrupted.sample(logits(), 0);
            uninterrupted.accept(out[i]);
        }
        for (int k : new int[] {1, 7, 39}) {
            Sampler resumed = new Sampler(p, 6, prompt);
            resumed.resume(out, 0, k);
            for (int i = k; i < out.length; i++) {
                int t = resumed.sample(logits(), 0);
                assertEquals(out[i], t, "token " + i + " after resuming at " + k);
                resumed.accept(t);
            }
        }
        Sampler fresh = new Sampler(p, 6, prompt);
        int differing = 0;
        for (int i = 0; i < 20; i++) {
            int t = fresh.sample(logits(), 0);
            fresh.accept(t);
            if (t != out[20 + i]) differing++;
        }
        assertTrue(differing > 0, "a sampler that was not resumed draws another stream");
    }

    @Test
    void invalidParametersAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> SamplingParams.sampled(-1f, 0, 1f, 0f, null));
        assertThrows(IllegalArgumentException.class, () -> SamplingParams.sampled(1f, -2, 1f, 0f, null));
        assertThrows(IllegalArgumentException.class, () -> SamplingParams.sampled(1f, 0, 0f, 0f, null));
        assertThrows(IllegalArgumentException.class, () -> SamplingParams.sampled(1f, 0, 1f, 1.5f, null));
        assertThrows(IllegalArgumentException.class, () -> SamplingParams.GREEDY.withPenalties(0f, 0f, 0f));
        assertThrows(IllegalArgumentException.class, () -> SamplingParams.GREEDY.withPenalties(1f, 3f, 0f));
    }
}
