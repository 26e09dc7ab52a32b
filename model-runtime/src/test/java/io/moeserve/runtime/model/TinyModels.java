package io.moeserve.runtime.model;

import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.generate.GenerationRequest;
import io.moeserve.runtime.generate.Generator;
import io.moeserve.runtime.generate.SamplingParams;
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import io.moeserve.runtime.synthetic.SyntheticCheckpointGenerator;
import io.moeserve.runtime.synthetic.SyntheticConfigs;
import io.moeserve.runtime.tensor.DType;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/** Tiny synthetic checkpoints of every architecture, generated once per test JVM into a temporary directory. */
public final class TinyModels {
    private static final Map<Architecture, Path> F32 = new EnumMap<>(Architecture.class);
    private static final Map<Architecture, Path> BF16 = new EnumMap<>(Architecture.class);
    private static Path root;

    private TinyModels() {}

    public static synchronized Path checkpoint(Architecture arch) {
        return F32.computeIfAbsent(arch, a -> generate(a, DType.F32, "f32"));
    }

    public static synchronized Path bf16Checkpoint(Architecture arch) {
        return BF16.computeIfAbsent(arch, a -> generate(a, DType.BF16, "bf16"));
    }

    private static Path mxfp4;

    /** gpt-oss as the hub ships it: MXFP4 experts, the rest F32. */
    public static synchronized Path mxfp4Checkpoint() {
        if (mxfp4 == null) {
            mxfp4 = root().resolve("gpt_oss-mxfp4");
            SyntheticCheckpointGenerator.generate(mxfp4, SyntheticCheckpointGenerator.Spec.tiny(Architecture.GPT_OSS)
                    .withExperts(SyntheticCheckpointGenerator.ExpertFormat.MXFP4));
        }
        return mxfp4;
    }

    private static Path generate(Architecture arch, DType dtype, String tag) {
        Path dir = root().resolve(arch.name().toLowerCase() + "-" + tag);
        SyntheticCheckpointGenerator.generate(dir, new SyntheticCheckpointGenerator.Spec(arch, SyntheticConfigs.Size.TINY,
                dtype, 1234, 1L << 40, arch.ordinal() % 2 == 1));
        return dir;
    }

    private static Path root() {
        if (root == null) {
            try {
                root = Files.createTempDirectory("moe-tiny-models");
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            root.toFile().deleteOnExit();
        }
        return root;
    }

    public static ModelOptions options(int maxStepTokens) {
        Parallel parallel = Parallel.shared();
        return new ModelOptions(maxStepTokens, 256, new CpuMatmulKernels(parallel), parallel, ExpertSelection.ALL, null);
    }

    /**
     * Generates {@code out.length} greedy tokens after {@code prompt} into {@code out}; returns the logits of the
     * prompt's last position.
     */
    public static float[] greedy(MoeModel model, int[] prompt, int[] out) {
        Generator g = new Generator(model, model.newKvCache(512, 1));
        float[][] promptLogits = new float[1][];
        int[] tokens = g.generate(List.of(new GenerationRequest(prompt, SamplingParams.GREEDY, out.length, new int[0])),
                (s, t) -> { }, RoutingObserver.NONE, promptLogits).getFirst().outputTokens();
        System.arraycopy(tokens, 0, out, 0, tokens.length);
        return promptLogits[0];
    }

    public static MoeModel load(Architecture arch, int maxStepTokens) {
        return MoeModel.load(checkpoint(arch), options(maxStepTokens));
    }
}
