package io.moeserve.cli;

import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.synthetic.SyntheticCheckpointGenerator;
import io.moeserve.runtime.synthetic.SyntheticConfigs;
import io.moeserve.runtime.tensor.DType;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** `moe synth`: writes a synthetic checkpoint of any supported architecture in the exact Hugging Face layout. */
@Command(name = "synth", description = "Generate a synthetic checkpoint (random weights, real files) of any architecture.")
final class SynthCommand implements Callable<Integer> {
    @Option(names = "--arch", required = true,
            description = "the family, by short name (e.g. mixtral, deepseek-v3) or Hugging Face class name; an unknown one lists them")
    String arch;

    @Option(names = "--size", defaultValue = "tiny", description = "tiny, small or bench (Mixtral-shaped ~1.2 B); default ${DEFAULT-VALUE}")
    String size;

    @Option(names = "--dtype", defaultValue = "bf16", description = "f32, bf16 or f16; default ${DEFAULT-VALUE}")
    String dtype;

    @Option(names = "--seed", defaultValue = "1234")
    long seed;

    @Option(names = "--shard-mb", defaultValue = "2048", description = "Shard size limit in MiB; default ${DEFAULT-VALUE}")
    long shardMb;

    @Option(names = "--experts", defaultValue = "float",
            description = "gpt-oss only: float (the --dtype), mxfp4 (as the hub ships gpt-oss) or mxfp4-dequantized (its float"
                    + " twin: the same weights, dequantized); default ${DEFAULT-VALUE}")
    String experts;

    @Option(names = "--out", required = true, description = "Output directory.")
    Path out;

    @Override
    public Integer call() {
        Architecture a = parseArchitecture(arch);
        DType d = DType.valueOf(dtype.toUpperCase(Locale.ROOT));
        long start = System.nanoTime();
        var format = SyntheticCheckpointGenerator.ExpertFormat.valueOf(experts.toUpperCase(Locale.ROOT).replace('-', '_'));
        ModelConfig c = SyntheticModel.generate(out, new SyntheticCheckpointGenerator.Spec(a,
                SyntheticConfigs.Size.parse(size), d, seed, shardMb << 20, false, format));
        System.out.printf("wrote %s %s%s (%d layers, hidden %d, %d experts) to %s in %.1f s%n", a.hfClassName(), d,
                format == SyntheticCheckpointGenerator.ExpertFormat.FLOAT ? "" : ", experts " + experts, c.numLayers(),
                c.hiddenSize(), c.moe().numExperts(), out, (System.nanoTime() - start) / 1e9);
        return 0;
    }

    static Architecture parseArchitecture(String s) {
        return Architecture.fromName(s).orElseThrow(() -> new IllegalArgumentException("unknown architecture " + s + " ("
                + String.join(", ", Arrays.stream(Architecture.values()).map(Architecture::shortName).toList()) + ")"));
    }
}
