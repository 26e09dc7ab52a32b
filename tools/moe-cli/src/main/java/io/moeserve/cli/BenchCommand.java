package io.moeserve.cli;

import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.checkpoint.QuantizationConfig;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.family.ExpectedTensor;
import io.moeserve.runtime.family.TensorLayout;
import io.moeserve.runtime.family.TensorRole;
import io.moeserve.runtime.generate.Generator;
import io.moeserve.runtime.generate.Sampler;
import io.moeserve.runtime.kernel.MemoryBandwidth;
import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.RoutingObserver;
import io.moeserve.runtime.model.StepBatch;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * `moe bench DIR`: end-to-end throughput of the runtime on a checkpoint: prefill tokens/s for one long prompt,
 * decode tokens/s and per-step latency at several batch sizes, peak memory, and the machine's read bandwidth
 * with the decode ceiling it implies (weight bytes read per decoded token ÷ bandwidth).
 */
@Command(name = "bench", description = "Benchmark prefill and decode on a checkpoint; prints figures for BENCHMARKS.md.")
final class BenchCommand implements Callable<Integer> {
    /** The first line of a mapping's entry in /proc/self/smaps: its address range. */
    private static final Pattern MAPPING = Pattern.compile("[0-9a-f]+-[0-9a-f]+ ");

    @Parameters(index = "0", description = "Checkpoint directory.")
    Path dir;

    @Option(names = "--batch", split = ",", defaultValue = "1,4,16", description = "Decode batch sizes (default ${DEFAULT-VALUE}).")
    List<Integer> batches;

    @Option(names = "--prompt-tokens", defaultValue = "512", description = "Prefill benchmark prompt length (default ${DEFAULT-VALUE}).")
    int promptTokens;

    @Option(names = "--decode-tokens", defaultValue = "32", description = "Decode steps timed per batch size (default ${DEFAULT-VALUE}).")
    int decodeTokens;

    @Option(names = "--context", defaultValue = "16",
            description = "Tokens each decoding sequence holds before its timed steps: 16 matches llama-bench's tg (an almost empty "
                    + "cache); longer contexts time attention over the KV cache too (default ${DEFAULT-VALUE}).")
    int context;

    @Option(names = "--repeats", defaultValue = "2", description = "Timed repetitions; the best is reported (default ${DEFAULT-VALUE}).")
    int repeats;

    @Mixin
    RuntimeOptions runtime;

    @Override
    public Integer call() throws IOException {
        int maxBatch = batches.stream().mapToInt(Integer::intValue).max().orElse(1);
        runtime.stepTokens = Math.max(runtime.stepTokens, Math.max(promptTokens, maxBatch));
        try (MoeModel model = MoeModel.load(dir, runtime.modelOptions(dir))) {
            ModelConfig c = model.config();
            int threads = model.options().parallel().threads();
            System.out.printf("model %s (%s), %d threads, %s%n", dir, c.architecture().hfClassName(), threads, cpuName());
            // With --activations int8 the panels are anonymous memory and the checkpoint's codes are unloaded.
            System.out.printf("activations %s; resident after load %.2f GiB (anonymous %.2f GiB, checkpoint pages %.2f GiB)%n",
                    model.options().int8Activations() ? "int8" : "float", statusBytes("VmRSS:") / (double) (1L << 30),
                    statusBytes("RssAnon:") / (double) (1L << 30), mappedPages(dir)[0] / (double) (1L << 30));
            double bandwidth = MemoryBandwidth.measureReadBandwidth(model.options().parallel(), 1L << 30) * 1e9;
            long bytesPerToken = activeWeightBytes(model);
            System.out.printf("read bandwidth %.1f GB/s; weights read per decoded token (batch 1) %.1f MB -> ceiling %.1f tokens/s%n",
                    bandwidth / 1e9, bytesPerToken / 1e6, bandwidth / bytesPerToken);

            KvCache cache = model.newKvCache(promptTokens + maxBatch * (context + decodeTokens + 64) + 64, Math.max(2, maxBatch));
            Generator generator = new Generator(model, cache);
            long kvPerToken = KvCache.bytesPerToken(c, cache.dtype());
            System.out.printf("kv cache %s: %.1f KiB per token, %.2f MiB per sequence at context %d%n", cache.dtype(), kvPerToken / 1024.0,
                    kvPerToken * (double) Math.max(context, promptTokens) / 1048576, Math.max(context, promptTokens));
            int[] prompt = tokens(promptTokens, c.vocabSize(), 17);
            double bestPrefill = 0;
            for (int r = 0; r <= repeats; r++) {
                int slot = cache.allocateSequence();
                long t0 = System.nanoTime();
                generator.prefill(prompt, slot, RoutingObserver.NONE);
                double s = (System.nanoTime() - t0) / 1e9;
                cache.release(slot);
                if (r > 0) bestPrefill = Math.max(bestPrefill, promptTokens / s);
            }
            System.out.printf("prefill  %d-token prompt: %.1f tokens/s%n", promptTokens, bestPrefill);
            // With offloading on, what the budget leaves in memory: sampled between runs (smaps is slow to read).
            long mostResident = runtime.residency == null ? 0 : mappedPages(dir)[0];
            for (int b : batches) {
                double best = 0;
                double bestLatency = Double.MAX_VALUE;
                for (int r = 0; r <= repeats; r++) {
                    double[] m = decode(model, cache, generator, b);
                    if (runtime.residency != null) mostResident = Math.max(mostResident, mappedPages(dir)[0]);
                    if (r > 0 && m[0] > best) {
                        best = m[0];
                        bestLatency = m[1];
                    }
                }
                String fraction = b == 1 ? String.format(" (%.0f%% of the bandwidth ceiling)", 100 * best / (bandwidth / bytesPerToken)) : "";
                System.out.printf("decode   batch %2d%s: %.1f tokens/s, %.1f ms per step%s%n", b,
                        context == 16 ? "" : " at context " + context, best, bestLatency * 1e3, fraction);
            }
            long[] pages = mappedPages(dir);
            if (pages[0] > 0) {
                // Whether the kernel maps the checkpoint in 2 MiB pages moves decode by ~10% here (fewer TLB misses,
                // BENCHMARKS.md); it follows the page cache's folios, not this process, so say which case this is.
                System.out.printf("checkpoint pages resident %.0f MB, %.0f%% of them mapped in 2 MiB pages%n", pages[0] / 1e6,
                        100.0 * pages[1] / pages[0]);
            }
            if (runtime.offloadReport() != null) {
                System.out.println(runtime.offloadReport());
                System.out.printf("expert weights %.1f MiB; checkpoint pages resident after each run at most %.1f MiB"
                        + " (the other weights are resident whenever used)%n", model.experts().byteSize() / 1048576.0, mostResident / 1048576.0);
            }
            System.out.printf("peak resident memory %.2f GiB (weights are mapped; only touched pages count), heap used %.2f GiB%n",
                    peakRssBytes() / (double) (1L << 30),
                    (Runtime.getRuntime().totalMemory() - Runtime.getRuntime().freeMemory()) / (double) (1L << 30));
        }
        return 0;
    }

    /** Decodes `decodeTokens` steps for b sequences after a prefill of about `context` tokens; returns {tokens/s, seconds per step}. */
    private double[] decode(MoeModel model, KvCache cache, Generator generator, int b) {
        int vocab = model.config().vocabSize();
        int[] slots = new int[b];
        int[] next = new int[b];
        int[] length = new int[b];
        float[] logits = new float[b * vocab];
        for (int s = 0; s < b; s++) {
            slots[s] = cache.allocateSequence();
            int[] p = tokens(context + s, vocab, 100 + s);
            generator.prefill(p, slots[s], RoutingObserver.NONE);
            length[s] = p.length;
            next[s] = (s * 31 + 7) % vocab;
        }
        StepBatch batch = new StepBatch(Math.max(b, 1));
        long t0 = System.nanoTime();
        for (int step = 0; step < decodeTokens; step++) {
            batch.clear();
            for (int s = 0; s < b; s++) batch.add(next[s], slots[s], length[s]++, true);
            model.forward(batch, cache, logits, RoutingObserver.NONE);
            for (int s = 0; s < b; s++) next[s] = Sampler.argmax(logits, s * vocab, vocab);
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        for (int slot : slots) cache.release(slot);
        return new double[] {b * decodeTokens / seconds, seconds / decodeTokens};
    }

    /**
     * Weight bytes one batch-1 decode step reads: everything but the routed experts (one row of the embeddings),
     * plus top-k of them per MoE layer; linear layers as the checkpoint stores them (codes, scales and zero points
     * when quantized).
     */
    static long activeWeightBytes(MoeModel model) {
        ModelConfig c = model.config();
        Checkpoint ck = model.checkpoint();
        int floatBytes = ck.tensor(TensorLayout.embedTokens()).dtype().byteSize();
        QuantizationConfig q = ck.quantization();
        long bytes = 0;
        for (ExpectedTensor t : new TensorLayout(c).expectedTensors()) {
            if (t.name().contains(".experts.")) continue;
            if (t.name().equals(TensorLayout.embedTokens())) bytes += (long) c.hiddenSize() * floatBytes;
            else bytes += stored(q, t, floatBytes);
        }
        int layer = 0;
        while (!c.isSparse(layer)) layer++;
        // One expert as loaded (codes, scales, zero points), whatever its family's layout on disk.
        long perExpert = model.experts().expert(layer, 0).byteSize();
        return bytes + perExpert * c.moe().topK() * c.numSparseLayers();
    }

    private static long stored(QuantizationConfig q, ExpectedTensor t, int floatBytes) {
        if (t.role() != TensorRole.LINEAR || t.shape().length != 2) return t.numElements() * floatBytes;
        String module = t.name().substring(0, t.name().length() - ".weight".length());
        return q.storedBytes(module, (int) t.shape()[0], (int) t.shape()[1], floatBytes);
    }

    static int[] tokens(int n, int vocab, int seed) {
        int[] t = new int[n];
        long x = seed;
        for (int i = 0; i < n; i++) {
            x = x * 6364136223846793005L + 1442695040888963407L;
            t[i] = (int) ((x >>> 33) % vocab);
        }
        return t;
    }

    static long peakRssBytes() {
        return statusBytes("VmHWM:");
    }

    /** A size line of /proc/self/status ({@code VmRSS:}, {@code RssAnon:}...) in bytes; -1 where there is none. */
    static long statusBytes(String key) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith(key)) return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
        return -1;
    }

    /**
     * Resident bytes of this process's mappings of files under the checkpoint directory, and how many of them are
     * mapped with 2 MiB page-table entries ({@code FilePmdMapped} in /proc/self/smaps); {0, 0} where there is no
     * smaps (not Linux).
     */
    static long[] mappedPages(Path checkpoint) {
        long rss = 0;
        long pmd = 0;
        try {
            String root = checkpoint.toRealPath().toString() + "/";
            boolean inCheckpoint = false;
            for (String line : Files.readAllLines(Path.of("/proc/self/smaps"))) {
                if (MAPPING.matcher(line).lookingAt()) {
                    int slash = line.indexOf('/');
                    inCheckpoint = slash >= 0 && line.substring(slash).startsWith(root);
                } else if (inCheckpoint && line.startsWith("Rss:")) {
                    rss += kilobytes(line);
                } else if (inCheckpoint && line.startsWith("FilePmdMapped:")) {
                    pmd += kilobytes(line);
                }
            }
        } catch (IOException | RuntimeException e) {
            return new long[] {0, 0};
        }
        return new long[] {rss, pmd};
    }

    private static long kilobytes(String smapsLine) {
        return Long.parseLong(smapsLine.replaceAll("[^0-9]", "")) * 1024;
    }

    static String cpuName() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("model name")) return line.substring(line.indexOf(':') + 1).trim() + ", "
                        + Runtime.getRuntime().availableProcessors() + " cores";
            }
        } catch (IOException e) {
            return "unknown CPU";
        }
        return "unknown CPU";
    }
}
