package io.moeserve.cli;

import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.expert.ExpertComputeListener;
import io.moeserve.runtime.expert.ExpertResidency;
import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.expert.OffloadingExpertExecutor;
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import io.moeserve.runtime.model.ExpertSkipping;
import io.moeserve.runtime.model.KvCacheDtype;
import io.moeserve.runtime.model.ModelOptions;
import io.moeserve.runtime.model.PrunedExperts;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** Options shared by the commands that run a model. */
final class RuntimeOptions {
    @Option(names = "--threads", description = "Compute threads (default: all cores).")
    Integer threads;

    @Option(names = "--max-context", defaultValue = "4096", description = "Longest sequence to run (default: ${DEFAULT-VALUE}).")
    int maxContext;

    @Option(names = "--step-tokens", defaultValue = "512", description = "Most tokens per forward step (prefill chunk; default: ${DEFAULT-VALUE}).")
    int stepTokens;

    @Option(names = "--skip-threshold", defaultValue = "0", description = "Dynamic expert skipping (MC-MoE's ODP): drop a token's expert "
            + "whose gate weight is below this fraction of its top expert's, in [0, 1]; 0 = off (default: ${DEFAULT-VALUE}).")
    float skipThreshold;

    @Option(names = "--skip-protect-fraction", defaultValue = "0.02", description = "With skipping on, the fraction of each prompt "
            + "chunk's most important tokens that keep all their experts (default: ${DEFAULT-VALUE}).")
    float skipProtectFraction;

    @Option(names = "--prune-experts", defaultValue = "", description = "Experts the gates never pick, as if pruned (their gate logits "
            + "are -inf): LAYER:E,E,... entries joined by ';', LAYER a layer index or * for every MoE layer, e.g. '*:3;5:0,7'.")
    String pruneExperts;

    @Option(names = "--offload-budget", description = "Expert offloading: keep at most this many bytes of routed expert weights "
            + "resident (suffix k, m or g for KiB, MiB, GiB), read the others from the mapped checkpoint when called, and prefetch "
            + "the next layer's likely experts (its gate applied to this layer's hidden states); the output is unchanged. "
            + "Off unless given.")
    String offloadBudget;

    @Option(names = "--offload-prefetch", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "With --offload-budget: prefetch by pre-gating (default); --no-offload-prefetch leaves only LRU on demand.")
    boolean offloadPrefetch;

    @Option(names = "--kv-cache-dtype", defaultValue = "f32", description = "How the KV cache stores keys and values: f32 (exact) "
            + "or bf16 (half the memory, rounded to nearest even; attention reads them widened) (default: ${DEFAULT-VALUE}).")
    String kvCacheDtype;

    @Option(names = "--activations", defaultValue = "float", description = "float: quantized weights are dequantized exactly "
            + "(the default; the dequantized model's bits); int8: int8 and int4 weights (symmetric, groups of a multiple of 32 "
            + "columns) multiply with activations quantized to int8 per block of 32 columns, llama.cpp's Q8_0 numerics, faster "
            + "but not the same bits. Other matrices keep the exact path.")
    String activations;

    /** The offloading executor's resident set, once a model was loaded with --offload-budget; else null. */
    ExpertResidency residency;

    /** Options for the model in {@code dir} (whose top-k sizes the offloading executor's scratch). */
    ModelOptions modelOptions(Path dir) {
        Parallel parallel = threads == null ? Parallel.shared() : new Parallel(threads);
        CpuMatmulKernels kernels = new CpuMatmulKernels(parallel);
        ModelOptions options = new ModelOptions(stepTokens, maxContext, kernels, parallel, ExpertSelection.ALL, null)
                .withSkipping(new ExpertSkipping(skipThreshold, skipProtectFraction)).withPrunedExperts(PrunedExperts.parse(pruneExperts))
                .withKvCacheDtype(KvCacheDtype.parse(kvCacheDtype))
                .withInt8Activations(ModelOptions.int8Activations("--activations", activations));
        if (offloadBudget == null) return options;
        if (options.int8Activations()) {
            // Panels are built in memory at load for every expert, which is what offloading exists to avoid.
            throw new IllegalArgumentException("--activations int8 repacks every expert into memory at load; it cannot be combined"
                    + " with --offload-budget");
        }
        long budget = bytes(offloadBudget);
        int topK = ConfigParser.load(dir).moe().topK();
        return options.withExecutor(ExpertSelection.ALL, store -> {
            OffloadingExpertExecutor executor = OffloadingExpertExecutor.local(store, kernels, stepTokens, topK, budget,
                    offloadPrefetch, ExpertComputeListener.NONE);
            residency = executor.residency();
            return executor;
        });
    }

    /** The offloading report line for stderr, or null when offloading is off. */
    String offloadReport() {
        return residency == null ? null : residency.report();
    }

    /** Bytes from {@code 123}, {@code 64k}, {@code 512m} or {@code 1.5g}. */
    static long bytes(String text) {
        String s = text.trim().toLowerCase(java.util.Locale.ROOT);
        long unit = 1;
        if (s.endsWith("k") || s.endsWith("m") || s.endsWith("g")) {
            unit = switch (s.charAt(s.length() - 1)) {
                case 'k' -> 1L << 10;
                case 'm' -> 1L << 20;
                default -> 1L << 30;
            };
            s = s.substring(0, s.length() - 1);
        }
        try {
            double v = Double.parseDouble(s);
            if (v < 0 || Double.isNaN(v)) throw new NumberFormatException();
            return (long) (v * unit);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--offload-budget '" + text + "' is not a size in bytes (e.g. 512m, 2g)");
        }
    }
}
