package io.moeserve.cli;

import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.prune.CheckpointPruner;
import io.moeserve.runtime.quantize.RoutingStats;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * `moe prune`: writes a checkpoint without the least important routed experts of each MoE layer (importance =
 * routing count × mean gate weight, from the router's routing statistics or measured on calibration text). The
 * pruned checkpoint equals the original run with {@code --prune-experts} naming the same experts.
 */
@Command(name = "prune", description = "Write a checkpoint without each MoE layer's least important routed experts (count x mean gate "
        + "weight, from --stats or measured on --calibration text).")
final class PruneCommand implements Callable<Integer> {
    @Parameters(index = "0", description = "checkpoint directory")
    Path dir;

    @Option(names = "--out", required = true, description = "output directory")
    Path out;

    @Option(names = "--keep-fraction", defaultValue = "0.75", description = "share of each layer's experts kept (at least top-k); "
            + "default ${DEFAULT-VALUE}")
    double keepFraction;

    @Option(names = "--stats", description = "the router's /v1/routing-stats JSON (tokens[l][e], optional mean_weights[l][e])")
    Path stats;

    @Option(names = "--calibration", description = "UTF-8 text to measure the routing on, in windows of --max-context tokens")
    Path calibration;

    @Mixin
    RuntimeOptions runtime;

    @Override
    public Integer call() throws Exception {
        if ((stats == null) == (calibration == null)) throw new IllegalArgumentException("give exactly one of --stats and --calibration");
        ModelConfig config = ConfigParser.load(dir);
        double[][] importance = stats != null ? CheckpointPruner.importance(stats, config) : calibrate();
        int[][] pruned = CheckpointPruner.leastImportant(config, importance, keepFraction);
        CheckpointPruner.write(dir, out, pruned);
        for (int l = 0; l < pruned.length; l++) {
            if (config.isSparse(l)) System.out.println("layer " + l + ": pruned experts " + Arrays.toString(pruned[l]));
        }
        System.out.printf("wrote %s with %d of %d experts per MoE layer%n", out,
                ConfigParser.load(out).moe().numExperts(), config.moe().numExperts());
        return 0;
    }

    /** Σ gate weight per (layer, expert) over the calibration text: count × mean weight. */
    private double[][] calibrate() throws Exception {
        try (MoeModel model = MoeModel.load(dir, runtime.modelOptions(dir)); PromptText text = PromptText.load(dir)) {
            int[] ids = text.encode(Files.readString(calibration), false, null);
            return CheckpointPruner.importance(RoutingStats.measure(model, ids, model.maxContext() - 1));
        }
    }
}
