package io.moeserve.cli;

import io.moeserve.runtime.quantize.CheckpointQuantizer;
import io.moeserve.runtime.quantize.TargetFormat;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** `moe quantize`: writes an int4/int8/FP8 copy of a float checkpoint, and reports the error per tensor. */
@Command(name = "quantize", description = "Write a quantized copy of a checkpoint (compressed-tensors, or DeepSeek-V3's fp8"
        + " layout) and report each tensor's error.")
final class QuantizeCommand implements Callable<Integer> {
    @Parameters(index = "0", description = "checkpoint directory (F32, BF16 or F16)")
    Path dir;

    @Option(names = "--experts", required = true, description = "routed experts: int4, int8, fp8, mxfp4 (gpt-oss, as the hub ships it) or keep")
    String experts;

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
    public Integer call() {
        if (!format.equals("compressed-tensors") && !format.equals("fp8")) {
            throw new IllegalArgumentException("unknown format '" + format + "' (expected compressed-tensors or fp8)");
        }
        TargetFormat e = TargetFormat.parse(experts);
        TargetFormat d = TargetFormat.parse(dense);
        if (d == TargetFormat.INT4) throw new IllegalArgumentException("--dense int4 is not offered: use int8, fp8 or keep");
        TargetFormat h = TargetFormat.parse(lmHead);
        if (h == TargetFormat.INT4) throw new IllegalArgumentException("--lm-head int4 is not offered: use int8, fp8 or keep");
        long start = System.nanoTime();
        List<CheckpointQuantizer.Report> reports = CheckpointQuantizer.quantize(dir, out,
                new CheckpointQuantizer.Options(e, d, h, groupSize, format.equals("fp8")));
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
}
