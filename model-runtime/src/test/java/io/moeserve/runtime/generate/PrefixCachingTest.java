package io.moeserve.runtime.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.KvCacheDtype;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.RoutingObserver;
import io.moeserve.runtime.model.TinyModels;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Prefix caching in the generation loop: a hit computes exactly what a cold run computes (every logit, bit for
 * bit, and so every token, greedy or seeded), the n choices of one prompt compute it once, and the cache gives its
 * blocks back under pressure.
 */
class PrefixCachingTest {
    /** 40 tokens: two full 16-position blocks to share, and a partial third that holds the last token. */
    private static final int[] PROMPT = IntStream.range(0, 40).map(i -> (i * 37 + 11) % 200 + 3).toArray();
    private static final SamplingParams SEEDED = SamplingParams.sampled(0.9f, 0, 0.95f, 0f, 1234L);

    /** A sequence that keeps the logits of every position it samples from. */
    private static final class Recorded extends Sequence {
        final List<float[]> logits = new ArrayList<>();

        Recorded(MoeModel model, int[] prompt, int maxNew, SamplingParams sampling) {
            super(prompt, maxNew, new Sampler(sampling, model.config().vocabSize(), prompt), new int[0]);
        }

        @Override
        protected void onLogits(float[] row, int offset, int vocab) {
            logits.add(java.util.Arrays.copyOfRange(row, offset, offset + vocab));
        }
    }

    private static Recorded run(MoeModel model, KvCache cache, int[] prompt, int maxNew, SamplingParams sampling) {
        GenerationLoop loop = new GenerationLoop(model, cache, 1, RoutingObserver.NONE);
        Recorded s = new Recorded(model, prompt, maxNew, sampling);
        assertTrue(loop.admit(s));
        while (!loop.running().isEmpty()) loop.step();
        return s;
    }

    private static void assertSame(Recorded cold, Recorded warm, String what) {
        assertArrayEquals(cold.generated(), warm.generated(), what + ": tokens");
        assertEquals(cold.logits.size(), warm.logits.size());
        for (int i = 0; i < cold.logits.size(); i++) assertArrayEquals(cold.logits.get(i), warm.logits.get(i), what + ": logits of token " + i);
    }

    private static KvCache caching(MoeModel model, int tokens, int sequences) {
        KvCache cache = model.newKvCache(tokens, sequences);
        cache.enablePrefixCaching();
        return cache;
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void aHitGivesTheLogitsOfAColdRunBitForBit(Architecture arch) {
        try (MoeModel model = TinyModels.load(arch, 24)) {
            for (SamplingParams sampling : List.of(SamplingParams.GREEDY, SEEDED)) {
                Recorded cold = run(model, model.newKvCache(512, 1), PROMPT, 12, sampling);
                KvCache cache = caching(model, 512, 1);
                Recorded first = run(model, cache, PROMPT, 12, sampling);
                assertEquals(0, cache.prefixHitTokens(), "nothing is cached before the first run");
                Recorded hit = run(model, cache, PROMPT, 12, sampling);
                assertEquals(32, cache.prefixHitTokens(), "the second run takes both full blocks before its last token");
                assertEquals(80, cache.prefixQueriedTokens());
                assertSame(cold, first, arch + " first run");
                assertSame(cold, hit, arch + " cache hit");
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void aHitGivesTheLogitsOfAColdRunBitForBitWithABf16Cache(Architecture arch) {
        try (MoeModel exact = TinyModels.load(arch, 24);
             MoeModel model = MoeModel.load(TinyModels.checkpoint(arch), TinyModels.options(24).withKvCacheDtype(KvCacheDtype.BF16))) {
            KvCache coldCache = model.newKvCache(512, 1);
            assertEquals(KvCacheDtype.BF16, coldCache.dtype());
            Recorded cold = run(model, coldCache, PROMPT, 12, SEEDED);
            KvCache cache = caching(model, 512, 1);
            Recorded first = run(model, cache, PROMPT, 12, SEEDED);
            Recorded hit = run(model, cache, PROMPT, 12, SEEDED);
            assertEquals(32, cache.prefixHitTokens());
            assertSame(cold, first, arch + " first run");
            assertSame(cold, hit, arch + " cache hit");
            Recorded f32 = run(exact, exact.newKvCache(512, 1), PROMPT, 12, SEEDED);
            assertFalse(java.util.Arrays.equals(f32.logits.getFirst(), cold.logits.getFirst()),
                    arch + ": the prompt's logits read rounded keys and values");
        }
    }

    @ParameterizedTest
    @EnumSource(value = Architecture.class, names = {"MIXTRAL", "DEEPSEEK_V2", "GPT_OSS"})
    void theNextTurnTakesThePromptAndTheGeneratedBlocksAndComputesWhatAColdRunComputes(Architecture arch) {
        try (MoeModel model = TinyModels.load(arch, 24)) {
            KvCache cache = caching(model, 1024, 1);
            Recorded turn1 = run(model, cache, PROMPT, 20, SEEDED);
            int[] next = IntStream.concat(IntStream.concat(IntStream.of(PROMPT), IntStream.of(turn1.generated())),
                    IntStream.of(7, 8, 9, 10, 11)).toArray();
            long before = cache.prefixHitTokens();
            Recorded turn2 = run(model, cache, next, 8, SEEDED);
            // 40 + 20 generated tokens fill three blocks (the last generated one was never fed, so 59 positions).
            assertEquals(48, cache.prefixHitTokens() - before, "prompt and generated blocks are reused");
            assertSame(run(model, model.newKvCache(1024, 1), next, 8, SEEDED), turn2, arch + " next turn");
        }
    }

    @Test
    void theChoicesOfOnePromptComputeItsSharedBlocksOnce() {
        try (MoeModel model = TinyModels.load(Architecture.MIXTRAL, 24)) {
            KvCache cache = caching(model, 1024, 4);
            GenerationLoop loop = new GenerationLoop(model, cache, 4, RoutingObserver.NONE);
            int promptRows = 0;
            List<Recorded> choices = new ArrayList<>();
            for (int c = 0; c < 4; c++) {
                Recorded s = new Recorded(model, PROMPT, 6, SamplingParams.sampled(0.9f, 0, 1f, 0f, 100L + c));
                assertTrue(loop.admit(s));
                choices.add(s);
            }
            Set<Integer> blocks = new HashSet<>();
            while (choices.stream().anyMatch(s -> s.phase() == Sequence.Phase.PREFILL)) {
                loop.step();
                for (int r = 0; r < loop.batch().size(); r++) if (loop.batch().position(r) < PROMPT.length) promptRows++;
            }
            assertEquals(40 + 3 * 8, promptRows, "the first choice computes the prompt, the others its last partial block");
            for (Sequence s : choices) {
                for (int p = 0; p < s.length() - 1; p += cache.blockSize()) blocks.add(cache.blockOf(s.slot(), p));
            }
            assertEquals(2 + 4, blocks.size(), "two shared prompt blocks and each choice's own last block");
            assertEquals(4, cache.blockReferences(cache.blockOf(choices.get(3).slot(), 0)));
            assertEquals(3 * 32, cache.prefixHitTokens());
            assertEquals(List.of(0, 32, 32, 32), choices.stream().map(Sequence::cachedPromptTokens).toList());
            while (!loop.running().isEmpty()) loop.step();
            for (int c = 0; c < 4; c++) {
                Recorded alone = run(model, model.newKvCache(512, 1), PROMPT, 6, SamplingParams.sampled(0.9f, 0, 1f, 0f, 100L + c));
                assertSame(alone, choices.get(c), "choice " + c);
            }
            assertEquals(cache.totalBlocks(), cache.freeBlocks(), "every block is free or evictable once they end");
        }
    }

    @Test
    void unreferencedCachedBlocksAreEvictedLeastRecentlyUsedFirstWhenThePoolRunsOut() {
        try (MoeModel model = TinyModels.load(Architecture.QWEN3_MOE, 24)) {
            // Six blocks: a 40-token prompt with 8 new tokens holds three (47 positions) and caches two; a 56-token
            // one holds four.
            KvCache cache = caching(model, 6 * 16, 1);
            int[] a = PROMPT;
            int[] b = IntStream.of(PROMPT).map(t -> t + 1).toArray();
            int[] c = IntStream.range(0, 56).map(i -> (i * 53 + 5) % 200 + 3).toArray();
            run(model, cache, a, 8, SamplingParams.GREEDY);
            run(model, cache, b, 8, SamplingParams.GREEDY);
            assertEquals(4, cache.cachedBlocks());
            assertEquals(6, cache.freeBlocks(), "cached blocks nobody holds count as free");
            run(model, cache, a, 8, SamplingParams.GREEDY);                // a hit: a's blocks are now the most recent
            assertEquals(32, cache.prefixHitTokens());
            // c takes the two free blocks and evicts the two least recently used cached ones: b's.
            Recorded cold = run(model, model.newKvCache(512, 1), c, 8, SamplingParams.GREEDY);
            assertSame(cold, run(model, cache, c, 8, SamplingParams.GREEDY), "a run that had to evict");
            assertEquals(32, cache.prefixHitTokens(), "c found nothing");
            assertEquals(5, cache.cachedBlocks(), "a's two and c's three");
            run(model, cache, a, 8, SamplingParams.GREEDY);
            assertEquals(64, cache.prefixHitTokens(), "a's blocks stayed");
            run(model, cache, b, 8, SamplingParams.GREEDY);
            assertEquals(64, cache.prefixHitTokens(), "b's blocks were evicted");
            for (int block = 0; block < cache.totalBlocks(); block++) assertEquals(0, cache.blockReferences(block));
        }
    }

    @Test
    void sequencesWithAnotherSkipThresholdOrMaskedExpertsDoNotShare() {
        try (MoeModel model = TinyModels.load(Architecture.MIXTRAL, 24)) {
            KvCache cache = caching(model, 1024, 1);
            Recorded skipping = new Recorded(model, PROMPT, 4, SamplingParams.GREEDY);
            skipping.setSkipThreshold(0.3f);
            GenerationLoop loop = new GenerationLoop(model, cache, 1, RoutingObserver.NONE);
            assertTrue(loop.admit(skipping));
            while (!loop.running().isEmpty()) loop.step();
            run(model, cache, PROMPT, 4, SamplingParams.GREEDY);
            assertEquals(0, cache.prefixHitTokens(), "the skip threshold changes the keys and values");
            int cached = cache.cachedBlocks();
            Recorded masked = new Recorded(model, IntStream.of(PROMPT).map(t -> t + 5).toArray(), 4, SamplingParams.GREEDY);
            masked.excludeFromPrefixCache();
            assertTrue(loop.admit(masked));
            while (!loop.running().isEmpty()) loop.step();
            assertEquals(cached, cache.cachedBlocks(), "an excluded sequence registers nothing");
            assertNotEquals(0, cached);
        }
    }
}
