package io.moeserve.planner.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.synthetic.SyntheticCheckpointGenerator;
import io.moeserve.runtime.synthetic.SyntheticConfigs;
import io.moeserve.runtime.tensor.DType;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The bytes of one expert the planner packs into pods, for layouts whose names differ from the common one. */
class ExpertBytesTest {
    @TempDir
    Path tmp;

    @Test
    void gptOssExpertsCountInTheirStoredFormat() {
        var spec = new SyntheticCheckpointGenerator.Spec(Architecture.GPT_OSS, SyntheticConfigs.Size.TINY, DType.BF16, 1, 1L << 40, false);
        Path bf16 = tmp.resolve("bf16");
        Path mxfp4 = tmp.resolve("mxfp4");
        var c = SyntheticCheckpointGenerator.generate(bf16, spec);
        SyntheticCheckpointGenerator.generate(mxfp4, spec.withExperts(SyntheticCheckpointGenerator.ExpertFormat.MXFP4));
        long weights = 3L * c.hiddenSize() * c.moe().expertIntermediate();
        assertEquals(2 * weights, PlanCommand.expertBytes(bf16));
        // MXFP4: half a byte per weight and one scale byte per 32.
        assertEquals(weights / 2 + weights / 32, PlanCommand.expertBytes(mxfp4));
    }

    @Test
    void glmExpertsAreItsRoutedOnes() {
        Path dir = tmp.resolve("glm");
        var c = SyntheticCheckpointGenerator.generate(dir, new SyntheticCheckpointGenerator.Spec(Architecture.GLM4_MOE,
                SyntheticConfigs.Size.TINY, DType.BF16, 1, 1L << 40, false));
        assertEquals(2 * 3L * c.hiddenSize() * c.moe().expertIntermediate(), PlanCommand.expertBytes(dir));
    }
}
