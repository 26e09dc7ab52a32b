package io.moeserve.cli;

import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.model.ModelOptions;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.quantize.CheckpointQuantizer;
import io.moeserve.runtime.quantize.MixedPrecision;
import io.moeserve.runtime.quantize.RoutingStats;
import io.moeserve.runtime.quantize.TargetFormat;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * `moe quantize`: writes an int4/int8/FP8 copy of a float checkpoint, or one with each expert at its own width
 * (mixed, from routing statistics or calibration text), and reports the error per tensor.
 */
@Command(name = "quantize", description = "Write a quantized copy of a checkpoint (compressed-tensors, or DeepSeek-V3's fp8"
        + " layout) and report each tensor's error.")
final class QuantizeCommand implements Callable<Integer> {
    @Parameters(index = "0", description = "checkpoint directory (F32, BF16 or F16)")
    Path dir;

    @Option(names = "--experts", required = true, description = "routed experts: int2, int3, int4, int8, fp8, mxfp4 (gpt-oss, as the hub"
            + " ships it), keep, or mixed (a width per expert from its importance, under --average-bits)")
    String experts;

    @Option(names = "--input-activations", defaultValue = "float", description = "int8: declare dynamic symmetric int8 input activations"
            + " (compressed-tensors input_activations, groups of 32) for every integer weight group, so the checkpoint runs with"
            + " int8 activations (llama.cpp's numerics) wherever it is loaded; float (default): weights only.")
    String inputActivations;

    @Option(names = "--average-bits", description = "mixed: bits per expert weight in each MoE layer, as --budget counts them")
    Double averageBits;

    @Option(names = "--budget", defaultValue = "stored", description = "mixed: what --average-bits counts: stored (codes with their"
            + " padding, and the scales) or codes (the widths alone, as MC-MoE's PMQ counts); default ${DEFAULT-VALUE}")
    String budget;

    @Option(names = "--bits", split = ",", defaultValue = "2,3,4,8", description = "mixed: the widths to choose from; default ${DEFAULT-VALUE}")
    int[] bits;

    @Option(names = "--stats", description = "mixed: routing statistics JSON ({\"layers\": [{\"layer\", \"experts\": [{\"expert\","
            + " \"count\", \"mean_weight\"}]}]}, as moe eval --routing-stats writes it)")
    Path stats;

    @Option(names = "--calibration", description = "mixed: a text file to measure the routing statistics on, instead of --stats")
    Path calibration;

    @Option(names = "--calibration-window", defaultValue = "512", description = "mixed: tokens per calibration sequence; default ${DEFAULT-VALUE}")
    int calibrationWindow;

    @Option(names = "--assignment", defaultValue = "importance", description = "mixed: importance, or the same bit mix assigned without it:"
            + " random (each layer's mix, shuffled) or uniform-by-layer (the model's mix dealt evenly over the layers, shuffled);"
            + " default ${DEFAULT-VALUE}")
    String assignment;

    @Option(names = "--seed", defaultValue = "1",
            description = "mixed: seed of the random and uniform-by-layer assignments; default ${DEFAULT-VALUE}")
    long seed;

    @Mixin
    RuntimeOptions runtime;

    @Option(names = "--dense", defaultValue = "keep",
            description = "attention, dense and shared-expert MLPs: int8, fp8 or keep; default ${DEFAULT-VALUE}")
    String dense;

    @Option(names = "--lm-head", defaultValue = "keep",
            description = "the output projection: int8, fp8 or keep (llama.cpp's Q8_0 files quantize it); default ${DEFAULT-VALUE}")
    String lmHead;

    @Option(names = "--group-size", defaultValue = "128", description = "columns per int4/int8 scale; default ${DEFAULT-VALUE}")
    int groupSize;

    @Option(names = "--format", defaultValue = "compressed-tensors",
            description = "compressed-tensors, or fp8 (DeepSeek-V3's weight_scale_inv layout, FP8 only); default ${DEFAULT-VALUE}")
    String format;

    @Option(names = "--out", required = true, description = "output directory")
    Path out;

    @Override
    public Integer call() throws java.io.IOException {
        if (!format.equals("compressed-tensors") && !format.equals("fp8")) {
            throw new IllegalArgumentException("unknown format '" + format + "' (expected compressed-tensors or fp8)");
        }
        boolean mixed = experts.trim().equalsIgnoreCase("mixed");
        TargetFormat e = mixed ? TargetFormat.INT4 : TargetFormat.parse(experts);
        TargetFormat d = TargetFormat.parse(dense);
        if (d.bits() > 0 && d.bits() < 8) throw new IllegalArgumentException("--dense " + dense + " is not offered: use int8, fp8 or keep");
        TargetFormat h = TargetFormat.parse(lmHead);
        if (h.bits() > 0 && h.bits() < 8) throw new IllegalArgumentException("--lm-head " + lmHead + " is not offered: use int8, fp8 or keep");
        long start = System.nanoTime();
        CheckpointQuantizer.Options options;
        if (mixed) {
            if (format.equals("fp8")) throw new IllegalArgumentException("mixed-precision experts are written as compressed-tensors");
            MixedPrecision.Plan plan = plan();
            options = CheckpointQuantizer.Options.mixed(CheckpointQuantizer.expertFormats(dir, plan), d, h, groupSize);
            printPlan(plan);
        } else {
            if (averageBits != null || stats != null || calibration != null) {
                throw new IllegalArgumentException("--average-bits, --stats and --calibration go with --experts mixed");
            }
            options = new CheckpointQuantizer.Options(e, d, h, groupSize, format.equals("fp8"));
        }
        boolean int8 = ModelOptions.int8Activations("--input-activations", inputActivations);
        if (int8 && (format.equals("fp8") || e == TargetFormat.MXFP4)) {
            throw new IllegalArgumentException("--input-activations int8 is declared in compressed-tensors' config groups of integer weights");
        }
        List<CheckpointQuantizer.Report> reports = CheckpointQuantizer.quantize(dir, out, options);
        if (int8) System.out.printf("int8 activations declared for %d config groups%n", CheckpointQuantizer.declareInt8Activations(out));
        System.out.println("tensor\tformat\trelative RMS error\tworst row\tits relative RMS error");
        double worst = 0;
        for (CheckpointQuantizer.Report r : reports) {
            System.out.printf("%s\t%s\t%.5f\t%d\t%.5f%n", r.tensor(), r.format(), r.error().relativeRms(),
                    r.error().worstRow(), r.error().worstRowRelativeRms());
            worst = Math.max(worst, r.error().relativeRms());
        }
        System.out.printf("quantized %d tensors into %s in %.1f s; worst tensor relative RMS error %.5f%n", reports.size(),
                out, (System.nanoTime() - start) / 1e9, worst);
        return 0;
    }

    private MixedPrecision.Plan plan() {
        if (averageBits == null) throw new IllegalArgumentException("--experts mixed needs --average-bits");
        MixedPrecision.Assignment a = MixedPrecision.Assignment.parse(assignment);
        if ((stats == null) == (calibration == null)) {
            throw new IllegalArgumentException("--experts mixed needs the experts' importance: --stats FILE or --calibration FILE");
        }
        ModelConfig config = ConfigParser.load(dir);
        RoutingStats routing;
        if (stats != null) {
            routing = RoutingStats.read(stats, config.numLayers(), config.moe().numFfnExperts());
        } else {
            int[] tokens;
            try (PromptText text = PromptText.load(dir)) {
                tokens = text.encode(Files.readString(calibration), false, null);
            } catch (IOException ex) {
                throw new UncheckedIOException("cannot read " + calibration + " or the checkpoint's tokenizer: " + ex.getMessage(), ex);
            }
            runtime.maxContext = Math.max(runtime.maxContext, calibrationWindow);
            try (MoeModel model = MoeModel.load(dir, runtime.modelOptions(dir))) {
                routing = RoutingStats.measure(model, tokens, calibrationWindow);
            }
            System.out.printf("measured routing on %d calibration tokens%n", tokens.length);
        }
        return CheckpointQuantizer.planMixed(dir, routing, bits, averageBits, MixedPrecision.Budget.parse(budget), a, seed, groupSize);
    }

    private void printPlan(MixedPrecision.Plan plan) {
        System.out.println("experts per width (" + assignment + "):");
        for (var w : plan.histogram().entrySet()) {
            System.out.printf("  int%d\t%d experts\t%d bytes each%n", w.getKey(), w.getValue(), plan.shape().bytes(w.getKey()));
        }
        System.out.printf("average bits per expert weight: %.3f codes only, %.3f as stored (padding and scales); experts take %d"
                + " bytes (%.1f MB), %d weights%n", plan.averageCodeBits(), plan.averageStoredBits(), plan.bytes(),
                plan.bytes() / 1e6, plan.weights());
    }
}
