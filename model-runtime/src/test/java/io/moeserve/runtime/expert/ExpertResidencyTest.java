package io.moeserve.runtime.expert;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.model.TinyModels;
import io.moeserve.runtime.quantize.TargetFormat;
import io.moeserve.runtime.quantize.WeightQuantizer;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The resident set's bookkeeping on a tiny Mixtral's mapped experts (all the same size): least recently used out
 * first, the budget never exceeded, a call's own experts never evicted for each other (the overflow streamed),
 * hits and misses one per distinct expert of a call, and prefetches used, wasted or pending.
 */
class ExpertResidencyTest {
    private Checkpoint checkpoint;
    private CheckpointExpertStore store;
    private long expertBytes;

    @BeforeEach
    void open() {
        Path dir = TinyModels.checkpoint(Architecture.MIXTRAL);
        ModelConfig config = ConfigParser.load(dir);
        checkpoint = Checkpoint.open(dir);
        store = ExpertLoader.loadForModel(config, checkpoint, ExpertSelection.ALL);
        expertBytes = store.expert(0, 0).byteSize();
    }

    @AfterEach
    void close() {
        checkpoint.close();
    }

    @Test
    void leastRecentlyUsedGoesFirstAndTheBudgetHolds() {
        try (ExpertResidency r = new ExpertResidency(store, 2 * expertBytes)) {
            call(r, 0, 0);             // miss
            call(r, 0, 1);             // miss
            call(r, 0, 0);             // hit: 1 is now the least recently used
            call(r, 0, 2);             // miss, evicts 1
            call(r, 0, 0);             // hit
            call(r, 0, 1);             // miss, evicts 2
            assertEquals(2, r.hits());
            assertEquals(4, r.misses());
            assertEquals(2, r.evictions());
            assertEquals(2 * expertBytes, r.residentBytes());
            assertEquals(r.residentBytes(), r.residentBytesRecounted());
        }
    }

    @Test
    void aCallsOwnExpertsAreNotEvictedForEachOtherAndTheOverflowIsStreamed() {
        try (ExpertResidency r = new ExpertResidency(store, 2 * expertBytes)) {
            call(r, 0, 0, 1, 2, 3, 1, 0); // four distinct experts, two fit
            assertEquals(4, r.misses());
            assertEquals(0, r.evictions());
            assertEquals(2 * expertBytes, r.residentBytes());
            call(r, 0, 0, 1);             // the two admitted ones are resident
            assertEquals(2, r.hits());
        }
        try (ExpertResidency none = new ExpertResidency(store, expertBytes - 1)) {
            call(none, 0, 0, 1);
            call(none, 0, 0);
            assertEquals(0, none.hits());
            assertEquals(3, none.misses());
            assertEquals(0, none.residentBytes());
        }
    }

    @Test
    void prefetchesAreUsedWastedOrPendingAndNeverEvictTheCallsExperts() {
        try (ExpertResidency r = new ExpertResidency(store, 3 * expertBytes)) {
            r.beforeCall(0, new int[] {0, 1}, 2);
            r.prefetch(1, new int[] {5, 6, 7, -1}, 4); // room for one: 0 and 1 belong to the call
            r.afterCall();
            assertEquals(1, r.prefetches());
            call(r, 1, 5);                              // the prefetched one is used
            assertEquals(1, r.prefetchesUsed());
            r.beforeCall(1, new int[] {5}, 1);
            r.prefetch(1, new int[] {6, 7}, 2);         // evicts 0 and 1, the least recently used
            r.afterCall();
            assertEquals(3, r.prefetches());
            call(r, 0, 2, 3);                           // evicts 5 (used) and 6 (never used); 7 stays
            assertEquals(1, r.prefetchesWasted());
            assertEquals(1, r.prefetchesPending());
            assertEquals(r.prefetches(), r.prefetchesUsed() + r.prefetchesWasted() + r.prefetchesPending());
            assertTrue(r.residentBytes() <= r.budgetBytes());
        }
    }

    @Test
    void randomCallsKeepEveryInvariant() {
        Random random = new Random(3);
        int experts = store.numExperts();
        for (long budget : new long[] {0, expertBytes, 3 * expertBytes + 5, store.byteSize()}) {
            try (ExpertResidency r = new ExpertResidency(store, budget)) {
                long lookups = 0;
                for (int c = 0; c < 300; c++) {
                    int layer = random.nextInt(store.numLayers());
                    int[] ids = new int[1 + random.nextInt(6)];
                    boolean[] seen = new boolean[experts];
                    for (int i = 0; i < ids.length; i++) {
                        ids[i] = random.nextInt(experts + 1) - 1;
                        if (ids[i] >= 0 && !seen[ids[i]]) {
                            seen[ids[i]] = true;
                            lookups++;
                        }
                    }
                    r.beforeCall(layer, ids, ids.length);
                    int[] predicted = {random.nextInt(experts), random.nextInt(experts)};
                    r.prefetch(Math.min(layer + 1, store.numLayers() - 1), predicted, 2);
                    r.afterCall();
                    assertTrue(r.residentBytes() <= budget, "resident " + r.residentBytes() + " over " + budget);
                    assertEquals(r.residentBytesRecounted(), r.residentBytes());
                    assertEquals(lookups, r.hits() + r.misses());
                    assertEquals(r.prefetches(), r.prefetchesUsed() + r.prefetchesWasted() + r.prefetchesPending());
                }
                if (budget == store.byteSize()) assertTrue(r.hits() > 0 && r.evictions() == 0, r.report());
                if (budget == 0) assertEquals(0, r.hits() + r.prefetches(), r.report());
            }
        }
    }

    @Test
    void expertsInOwnedMemoryCannotBeOffloaded() {
        try (Arena arena = Arena.ofConfined()) {
            CheckpointExpertStore quantized = store.map(w -> WeightQuantizer.quantize(w, TargetFormat.parse("int8"), 32, arena));
            var e = assertThrows(IllegalArgumentException.class, () -> new ExpertResidency(quantized, expertBytes));
            assertTrue(e.getMessage().contains("mapped"), e.getMessage());
        }
    }

    private static void call(ExpertResidency r, int layer, int... experts) {
        r.beforeCall(layer, experts, experts.length);
        r.afterCall();
    }
}
