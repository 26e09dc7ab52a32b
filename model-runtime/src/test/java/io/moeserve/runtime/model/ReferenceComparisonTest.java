package io.moeserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.generate.GenerationRequest;
import io.moeserve.runtime.generate.GenerationTrace;
import io.moeserve.runtime.generate.SamplingParams;
import io.moeserve.runtime.quantize.CheckpointQuantizer;
import io.moeserve.runtime.quantize.MixedPrecision;
import io.moeserve.runtime.quantize.TargetFormat;
import io.moeserve.runtime.synthetic.SyntheticCheckpointGenerator;
import io.moeserve.runtime.synthetic.SyntheticConfigs;
import io.moeserve.runtime.tensor.DType;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The runtime against an independent implementation of each architecture (tools/reference, numpy in float64,
 * written from the Hugging Face modeling code): logits at the last prompt position within 1e-4, greedy
 * continuations identical, gate choices identical at every prompt position of every MoE layer. BF16 checkpoints
 * are compared with the same bf16 weights widened, as the issue prescribes.
 */
class ReferenceComparisonTest {
    private static final int[] PROMPT = {11, 200, 37, 5, 301, 99, 42, 7, 256, 3, 140, 18, 77};
    private static final int NEW_TOKENS = 6;

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void float32CheckpointMatchesTheReference(Architecture arch) throws Exception {
        compare(TinyModels.checkpoint(arch), arch);
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void bfloat16CheckpointMatchesTheReferenceOnWidenedWeights(Architecture arch) throws Exception {
        compare(TinyModels.bf16Checkpoint(arch), arch);
    }

    /** gpt-oss as the hub ships it; the reference unpacks the blocks and scales by its own reading of MXFP4. */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void mxfp4CheckpointMatchesTheReferenceDequantizingItself(DType dtype, @TempDir Path tmp) throws Exception {
        Path dir = tmp.resolve("mxfp4");
        SyntheticCheckpointGenerator.generate(dir, new SyntheticCheckpointGenerator.Spec(Architecture.GPT_OSS,
                SyntheticConfigs.Size.TINY, dtype, 1234, 1L << 40, false, SyntheticCheckpointGenerator.ExpertFormat.MXFP4));
        compare(dir, Architecture.GPT_OSS);
    }

    static Stream<Arguments> quantized() {
        return Stream.of(
                Arguments.of(Architecture.MIXTRAL, TargetFormat.INT4, TargetFormat.INT8, false),
                Arguments.of(Architecture.QWEN3_MOE, TargetFormat.FP8, TargetFormat.FP8, false),
                Arguments.of(Architecture.QWEN3_MOE, TargetFormat.INT4, TargetFormat.KEEP, false),
                Arguments.of(Architecture.DEEPSEEK_V3, TargetFormat.FP8, TargetFormat.FP8, true),
                Arguments.of(Architecture.GLM4_MOE, TargetFormat.FP8, TargetFormat.FP8, false));
    }

    /** tools/reference dequantizes by its own reading of the formats (numpy, from their reference code). */
    @ParameterizedTest(name = "{0} experts {1} dense {2} fp8 layout {3}")
    @MethodSource("quantized")
    void quantizedCheckpointMatchesTheReferenceDequantizingItself(Architecture arch, TargetFormat experts, TargetFormat dense,
            boolean fp8Layout, @TempDir Path tmp) throws Exception {
        Path dir = tmp.resolve("quantized");
        CheckpointQuantizer.quantize(TinyModels.bf16Checkpoint(arch), dir,
                new CheckpointQuantizer.Options(experts, dense, 32, fp8Layout));
        compare(dir, arch);
    }

    /**
     * Mixed-precision experts, every width in every layer (int2, int3, int4, int8 by turns): the reference picks each
     * expert's config group by the groups' {@code re:} targets and unpacks its words by its own reading of
     * pack_to_int32 (ten int3 codes per word, sixteen int2).
     */
    @Test
    void mixedPrecisionCheckpointMatchesTheReferenceDequantizingItself(@TempDir Path tmp) throws Exception {
        Path source = TinyModels.bf16Checkpoint(Architecture.QWEN3_MOE);
        ModelConfig config = ConfigParser.load(source);
        int[] widths = {2, 3, 4, 8};
        int[][] bits = new int[config.numLayers()][];
        for (int l = 0; l < bits.length; l++) {
            bits[l] = new int[config.isSparse(l) ? config.moe().numFfnExperts() : 0];
            for (int x = 0; x < bits[l].length; x++) bits[l][x] = widths[(l + x) % widths.length];
        }
        Path dir = tmp.resolve("mixed");
        CheckpointQuantizer.quantize(source, dir, CheckpointQuantizer.Options.mixed(
                CheckpointQuantizer.expertFormats(source, new MixedPrecision.Plan(bits, null)), TargetFormat.KEEP, TargetFormat.KEEP, 32));
        compare(dir, Architecture.QWEN3_MOE);
    }

    private static void compare(Path dir, Architecture arch) throws Exception {
        JsonNode expected = PythonReference.run(dir, PROMPT, NEW_TOKENS);
        GenerationTrace actual;
        try (MoeModel model = MoeModel.load(dir, TinyModels.options(64))) {
            actual = GenerationTrace.run(model, new GenerationRequest(PROMPT, SamplingParams.GREEDY, NEW_TOKENS, new int[0]));
        }
        assertMatches(expected, actual, arch.toString(), PROMPT.length);
    }

    static void assertMatches(JsonNode expected, GenerationTrace actual, String arch, int promptLength) {
        assertEquals(actual.architecture(), expected.get("architecture").asText());
        JsonNode logits = expected.get("last_prompt_logits");
        assertEquals(logits.size(), actual.lastPromptLogits().length);
        float worst = 0;
        for (int i = 0; i < logits.size(); i++) worst = Math.max(worst, Math.abs((float) logits.get(i).asDouble() - actual.lastPromptLogits()[i]));
        assertTrue(worst <= 1e-4f, arch + ": last-prompt logits differ from the reference by " + worst);
        JsonNode ids = expected.get("generated_token_ids");
        int[] got = actual.result().outputTokens();
        assertEquals(ids.size(), got.length, arch + ": generated length");
        for (int i = 0; i < got.length; i++) assertEquals(ids.get(i).asInt(), got[i], arch + ": generated token " + i);
        JsonNode gate = expected.get("gate");
        assertEquals(gate.size(), actual.moeLayers().length, arch + ": MoE layer count");
        for (int m = 0; m < gate.size(); m++) {
            JsonNode layer = gate.get(m);
            assertEquals(layer.get("layer").asInt(), actual.moeLayers()[m]);
            for (int pos = 0; pos < promptLength; pos++) {
                for (int j = 0; j < actual.experts()[m][pos].length; j++) {
                    String where = arch + ": layer " + actual.moeLayers()[m] + " position " + pos + " choice " + j;
                    assertEquals(layer.get("experts").get(pos).get(j).asInt(), actual.experts()[m][pos][j], where);
                    assertEquals(layer.get("weights").get(pos).get(j).asDouble(), actual.weights()[m][pos][j], 1e-4, where);
                }
            }
        }
    }
}
