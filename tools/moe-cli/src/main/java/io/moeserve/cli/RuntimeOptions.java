package io.moeserve.cli;

import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import io.moeserve.runtime.model.ExpertSkipping;
import io.moeserve.runtime.model.ModelOptions;
import io.moeserve.runtime.model.PrunedExperts;
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

    ModelOptions modelOptions() {
        Parallel parallel = threads == null ? Parallel.shared() : new Parallel(threads);
        return new ModelOptions(stepTokens, maxContext, new CpuMatmulKernels(parallel), parallel, ExpertSelection.ALL, null)
                .withSkipping(new ExpertSkipping(skipThreshold, skipProtectFraction)).withPrunedExperts(PrunedExperts.parse(pruneExperts));
    }
}
