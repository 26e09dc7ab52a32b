package io.moeserve.system;

import io.moeserve.cli.SyntheticModel;
import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.generate.GenerationRequest;
import io.moeserve.runtime.generate.Generator;
import io.moeserve.runtime.generate.SamplingParams;
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.ModelOptions;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.RoutingObserver;
import io.moeserve.runtime.synthetic.SyntheticCheckpointGenerator;
import io.moeserve.runtime.synthetic.SyntheticConfigs;
import io.moeserve.runtime.tensor.DType;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/** Generated checkpoints for the system tests, and what the runtime computes on them in one process. */
final class Models {
    private static final Map<Architecture, Path> SMALL = new EnumMap<>(Architecture.class);

    private Models() {}

    /** A small checkpoint (real layout, real tokenizer and chat template) under system-tests/target/models. */
    static synchronized Path small(Architecture arch) {
        return SMALL.computeIfAbsent(arch, a -> {
            Path dir = ServiceProcess.ROOT.resolve("system-tests/target/models/" + a.name().toLowerCase());
            SyntheticModel.generate(dir, new SyntheticCheckpointGenerator.Spec(a, SyntheticConfigs.Size.SMALL,
                    DType.BF16, 7, 1L << 40, false));
            return dir;
        });
    }

    private static Path smallMxfp4;

    /** A small gpt-oss checkpoint as the hub ships it: MXFP4 experts, BF16 elsewhere, harmony tokenizer. */
    static synchronized Path smallMxfp4() {
        if (smallMxfp4 == null) {
            smallMxfp4 = ServiceProcess.ROOT.resolve("system-tests/target/models/gpt_oss-mxfp4");
            SyntheticModel.generate(smallMxfp4, new SyntheticCheckpointGenerator.Spec(Architecture.GPT_OSS,
                    SyntheticConfigs.Size.SMALL, DType.BF16, 7, 1L << 40, false, SyntheticCheckpointGenerator.ExpertFormat.MXFP4));
        }
        return smallMxfp4;
    }

    /** The runtime's greedy continuation in this process (the reference for distributed output). */
    static int[] inProcess(Path dir, int[] prompt, int maxNew) {
        Parallel p = Parallel.shared();
        try (MoeModel m = MoeModel.load(dir, new ModelOptions(256, 512, new CpuMatmulKernels(p), p, ExpertSelection.ALL, null))) {
            KvCache cache = m.newKvCache(2048, 1);
            return new Generator(m, cache).generate(List.of(new GenerationRequest(prompt, SamplingParams.GREEDY, maxNew, new int[0])),
                    (s, t) -> { }, RoutingObserver.NONE, null).getFirst().outputTokens();
        }
    }
}
