package io.moeserve.cli;

import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.merge.CheckpointMerger;
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
 * `moe merge`: writes a checkpoint whose routed experts are merged in groups (M-SMoE: the most important experts
 * lead, the others join the leader with the most similar gate row, each group becomes the importance-weighted
 * average of its aligned members). The gate is unchanged; config.json's {@code expert_alias} sends each original
 * expert to its merged one, which the checkpoint stores once.
 */
@Command(name = "merge", description = "Write a checkpoint with each MoE layer's routed experts merged in groups (importance from --stats "
        + "or measured on --calibration text; config.json's expert_alias maps the gate's experts to the merged ones).")
final class MergeCommand implements Callable<Integer> {
    @Parameters(index = "0", description = "checkpoint directory")
    Path dir;

    @Option(names = "--out", required = true, description = "output directory")
    Path out;

    @Option(names = "--experts-per-layer", description = "merged experts per MoE layer")
    Integer expertsPerLayer;

    @Option(names = "--merge-fraction", description = "merged experts per MoE layer as a share of the experts (rounded); default 0.75 "
            + "when --experts-per-layer is not given")
    Double mergeFraction;

    @Option(names = "--align", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "permute each member's intermediate neurons to match its group's leader before averaging (default on)")
    boolean align;

    @Option(names = "--stats", description = "the router's /v1/routing-stats JSON or moe eval --routing-stats' file")
    Path stats;

    @Option(names = "--calibration", description = "UTF-8 text to measure the routing on, in windows of --max-context tokens")
    Path calibration;

    @Mixin
    RuntimeOptions runtime;

    @Override
    public Integer call() throws Exception {
        if ((stats == null) == (calibration == null)) throw new IllegalArgumentException("give exactly one of --stats and --calibration");
        if (expertsPerLayer != null && mergeFraction != null) {
            throw new IllegalArgumentException("give --experts-per-layer or --merge-fraction, not both");
        }
        ModelConfig config = ConfigParser.load(dir);
        int n = config.moe().numExperts();
        double fraction = mergeFraction == null ? 0.75 : mergeFraction;
        if (!(fraction > 0 && fraction <= 1)) throw new IllegalArgumentException("--merge-fraction must lie in (0, 1], got " + fraction);
        int merged = expertsPerLayer != null ? expertsPerLayer : Math.max(1, (int) Math.round(fraction * n));
        double[][] importance = stats != null ? CheckpointPruner.importance(stats, config) : calibrate();
        int[][] alias = CheckpointMerger.groups(dir, importance, merged);
        CheckpointMerger.write(dir, out, alias, importance, align);
        for (int l = 0; l < alias.length; l++) {
            if (config.isSparse(l)) System.out.println("layer " + l + ": expert_alias " + Arrays.toString(alias[l]));
        }
        System.out.printf("wrote %s with %d merged experts per MoE layer for the gate's %d%s%n", out, merged, n, align ? " (aligned)" : "");
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
