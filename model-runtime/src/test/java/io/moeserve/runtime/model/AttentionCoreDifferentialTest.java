package io.moeserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.kernel.Parallel;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * {@link AttentionCore} (vector dot products, per-thread score rows, block-table lookups) against a textbook
 * attention computed in double precision straight from the positions: grouped-query heads, sequences of different
 * lengths in one step including several new tokens of one sequence (prefill), a sliding window, attention sinks,
 * head widths that leave a vector tail, groups of heads computed one by one and four at a time, and MLA's different
 * query/key and value widths; each with an F32 and a BF16 cache (whose reference reads the stored halves widened,
 * so it checks the BF16 passes' loads and masks, not the rounding, which {@link KvCacheTest} checks). It runs at
 * every vector width (model-runtime/pom.xml).
 */
class AttentionCoreDifferentialTest {

    @Test
    void groupedQueryAttentionMatchesTheTextbookFormula() {
        // Groups of 3 heads are computed head by head, groups of 4 and 8 four heads at a time (sharing each key and
        // value load); head widths of 24 and 40 end in a partial vector at every width, 64 in none.
        int[][] shapes = {{6, 2, 24}, {8, 2, 24}, {16, 2, 40}, {8, 2, 64}};
        for (int[] shape : shapes) {
            for (int window : new int[] {0, 5}) {
                for (int threads : new int[] {1, 2}) {
                    for (boolean sinks : new boolean[] {false, true}) {
                        for (KvCacheDtype dtype : KvCacheDtype.values()) {
                            int dim = shape[2];
                            check(new AttentionConfig(AttentionConfig.Kind.GROUPED_QUERY, shape[0], shape[1], dim, false, false,
                                    AttentionConfig.QkNorm.NONE, Float.NaN, new int[] {window}, null, (float) (1 / Math.sqrt(dim)), sinks),
                                    window, threads, dtype);
                        }
                    }
                }
            }
        }
    }

    @Test
    void latentAttentionWithDifferentKeyAndValueWidthsMatches() {
        var mla = new AttentionConfig.MlaDims(0, 16, 20, 12, 18, false);
        for (KvCacheDtype dtype : KvCacheDtype.values()) {
            check(new AttentionConfig(AttentionConfig.Kind.MULTI_HEAD_LATENT, 3, 3, 0, false, false,
                    AttentionConfig.QkNorm.NONE, Float.NaN, new int[] {0}, mla, 0.17f, false), 0, 2, dtype);
        }
    }

    private static void check(AttentionConfig a, int window, int threads, KvCacheDtype dtype) {
        Random random = new Random(5 + window + threads);
        int blockSize = 4;
        int maxContext = 40;
        KvCache cache = new KvCache(2, a.keyWidth(), a.valueWidth(), blockSize, 32, 3, maxContext, dtype);
        int layer = 1;
        // Three sequences: 13 cached positions then 1 new token (decode), 0 cached then 9 new (prefill), 30 then 2.
        int[][] plan = {{13, 1}, {0, 9}, {30, 2}};
        StepBatch batch = new StepBatch(16);
        for (int[] p : plan) {
            int slot = cache.allocateSequence();
            int total = p[0] + p[1];
            assertTrue(cache.reserve(slot, total));
            float[] k = new float[a.keyWidth()];
            float[] v = new float[a.valueWidth()];
            for (int pos = 0; pos < total; pos++) {
                for (int i = 0; i < k.length; i++) k[i] = (float) random.nextGaussian();
                for (int i = 0; i < v.length; i++) v[i] = (float) random.nextGaussian();
                cache.writeKeys(layer, k, 0, cache.keyOffset(slot, pos), k.length);
                cache.writeValues(layer, v, 0, cache.valueOffset(slot, pos), v.length);
            }
            for (int pos = p[0]; pos < total; pos++) batch.add(0, slot, pos, false);
        }
        int qk = a.qkHeadDim();
        int vd = a.vHeadDim();
        float[] q = new float[batch.size() * a.numHeads() * qk];
        for (int i = 0; i < q.length; i++) q[i] = (float) random.nextGaussian();
        float[] out = new float[batch.size() * a.numHeads() * vd];
        // Sinks from well below to well above the scores, so that some heads give the sink most of the weight.
        float[] sinks = null;
        if (a.sinks()) {
            sinks = new float[a.numHeads()];
            for (int h = 0; h < sinks.length; h++) sinks[h] = (float) (random.nextGaussian() * 3);
        }
        try (Parallel parallel = new Parallel(threads)) {
            new AttentionCore(parallel, maxContext).run(batch, cache, layer, q, out, a, window, sinks);
        }
        int group = a.numHeads() / a.numKvHeads();
        for (int t = 0; t < batch.size(); t++) {
            int slot = batch.slot(t);
            int pos = batch.position(t);
            int start = window > 0 ? Math.max(0, pos - window + 1) : 0;
            for (int h = 0; h < a.numHeads(); h++) {
                int kvHead = h / group;
                double[] scores = new double[pos - start + 1];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = start; j <= pos; j++) {
                    double s = 0;
                    for (int i = 0; i < qk; i++) {
                        s += (double) q[(t * a.numHeads() + h) * qk + i] * cache.key(layer, cache.keyOffset(slot, j) + kvHead * qk + i);
                    }
                    scores[j - start] = s * a.softmaxScale();
                    max = Math.max(max, scores[j - start]);
                }
                if (sinks != null) max = Math.max(max, sinks[h]);
                double sum = sinks == null ? 0 : Math.exp(sinks[h] - max);
                for (int j = 0; j < scores.length; j++) sum += scores[j] = Math.exp(scores[j] - max);
                for (int i = 0; i < vd; i++) {
                    double expected = 0;
                    for (int j = start; j <= pos; j++) {
                        expected += scores[j - start] / sum * cache.value(layer, cache.valueOffset(slot, j) + kvHead * vd + i);
                    }
                    float actual = out[(t * a.numHeads() + h) * vd + i];
                    if (!(Math.abs(expected - actual) <= 2e-5)) {
                        fail("token " + t + " (position " + pos + ") head " + h + " dim " + i + ": expected " + expected
                                + " got " + actual + " (window " + window + ", threads " + threads + ", " + dtype + ")");
                    }
                }
            }
        }
    }
}
