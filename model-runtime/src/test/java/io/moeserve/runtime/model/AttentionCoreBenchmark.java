package io.moeserve.runtime.model;

import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.kernel.Parallel;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Locale;
import java.util.Random;

/**
 * One layer's decode attention over a long KV cache, F32 against BF16 storage (issue 14 item 5), timed by the
 * calling thread's CPU time on one thread, so that other processes on a loaded machine do not count. The two dtypes
 * alternate call batch after call batch in one JVM, and each round's ratio is taken within the round.
 *
 * <p>Arguments: context (2048), heads (16), KV heads (4), head dimension (64), rounds (10), calls per round (200),
 * tokens in the step (1: a decode step; 256: the last 256-token chunk of a prefill of {@code context} tokens, as the
 * router's 256-token steps run it); the defaults are models/bench's attention. Run with {@code java -cp model-runtime/target/test-classes:
 * model-runtime/target/classes --add-modules=jdk.incubator.vector io.moeserve.runtime.model.AttentionCoreBenchmark}.
 */
public final class AttentionCoreBenchmark {
    private AttentionCoreBenchmark() {}

    public static void main(String[] args) {
        int context = arg(args, 0, 2048);
        int heads = arg(args, 1, 16);
        int kvHeads = arg(args, 2, 4);
        int dim = arg(args, 3, 64);
        int rounds = arg(args, 4, 10);
        int calls = arg(args, 5, 200);
        int tokens = arg(args, 6, 1);
        AttentionConfig a = new AttentionConfig(AttentionConfig.Kind.GROUPED_QUERY, heads, kvHeads, dim, false, false,
                AttentionConfig.QkNorm.NONE, Float.NaN, new int[] {0}, null, (float) (1 / Math.sqrt(dim)), false);
        KvCache[] caches = new KvCache[2];
        Random random = new Random(1);
        float[] k = new float[a.keyWidth()];
        float[] v = new float[a.valueWidth()];
        for (KvCacheDtype dtype : KvCacheDtype.values()) {
            KvCache cache = new KvCache(1, a.keyWidth(), a.valueWidth(), 16, context / 16 + 1, 1, context, dtype);
            int slot = cache.allocateSequence();
            cache.reserve(slot, context);
            for (int pos = 0; pos < context; pos++) {
                for (int i = 0; i < k.length; i++) k[i] = (float) random.nextGaussian();
                for (int i = 0; i < v.length; i++) v[i] = (float) random.nextGaussian();
                cache.writeKeys(0, k, 0, cache.keyOffset(slot, pos), k.length);
                cache.writeValues(0, v, 0, cache.valueOffset(slot, pos), v.length);
            }
            caches[dtype.ordinal()] = cache;
        }
        StepBatch batch = new StepBatch(tokens);
        for (int t = 0; t < tokens; t++) batch.add(0, 0, context - tokens + t, false);
        float[] q = new float[tokens * heads * dim];
        for (int i = 0; i < q.length; i++) q[i] = (float) random.nextGaussian();
        float[] out = new float[tokens * heads * dim];
        ThreadMXBean cpu = ManagementFactory.getThreadMXBean();
        System.out.printf(Locale.ROOT, "attention of a %d-token step ending at position %d, %d heads, %d KV heads, head dimension %d, "
                + "one thread; CPU microseconds per call (best of each round's batches of %d)%n", tokens, context - 1, heads, kvHeads, dim,
                calls);
        System.out.println("| round | F32 | BF16 | BF16 / F32 |");
        System.out.println("| --- | --- | --- | --- |");
        try (Parallel parallel = new Parallel(1)) {
            AttentionCore core = new AttentionCore(parallel, context);
            for (int r = -2; r < rounds; r++) {
                double[] best = {Double.MAX_VALUE, Double.MAX_VALUE};
                for (int rep = 0; rep < 3; rep++) {
                    for (int d = 0; d < 2; d++) {
                        long t0 = cpu.getCurrentThreadCpuTime();
                        for (int c = 0; c < calls; c++) core.run(batch, caches[d], 0, q, out, a, 0, null);
                        best[d] = Math.min(best[d], (cpu.getCurrentThreadCpuTime() - t0) / 1e3 / calls);
                    }
                }
                // The first two rounds warm up (C2 compiles both paths).
                if (r >= 0) {
                    System.out.printf(Locale.ROOT, "| %d | %.1f | %.1f | %.2f |%n", r + 1, best[0], best[1], best[1] / best[0]);
                }
            }
        }
    }

    private static int arg(String[] args, int i, int fallback) {
        return args.length > i ? Integer.parseInt(args[i]) : fallback;
    }
}
