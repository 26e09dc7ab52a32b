package io.moeserve.runtime.quantize;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.checkpoint.ShardedCheckpointWriter;
import io.moeserve.runtime.checkpoint.TensorSpec;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.expert.ExpertLoader;
import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.expert.ExpertWeights;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.TinyModels;
import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Tensor;
import io.moeserve.runtime.tensor.TensorAccess;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * A quantized checkpoint computes what the same model computes with its weights dequantized to float32 by the
 * format's formula: the same logits, bit for bit, and so the same greedy tokens. For the families that ship such
 * checkpoints: Mixtral int4 and int8, Qwen3-MoE int4 and FP8 (compressed-tensors), DeepSeek-V3 FP8 with MLA in its
 * own {@code weight_scale_inv} layout. The dequantized checkpoint is written from the quantized one through
 * {@link WeightMatrix#get}, the scalar formula, so the kernels are held to it end to end.
 */
class QuantizedModelTest {
    private static final int[] PROMPT = {5, 17, 42, 7, 99, 3, 64, 12};

    static Stream<Arguments> cases() {
        return Stream.of(
                Arguments.of(Architecture.MIXTRAL, TargetFormat.INT4, TargetFormat.KEEP, 32, false),
                Arguments.of(Architecture.MIXTRAL, TargetFormat.INT8, TargetFormat.INT8, 16, false),
                Arguments.of(Architecture.QWEN3_MOE, TargetFormat.INT4, TargetFormat.FP8, 32, false),
                Arguments.of(Architecture.QWEN3_MOE, TargetFormat.FP8, TargetFormat.FP8, 32, false),
                Arguments.of(Architecture.DEEPSEEK_V3, TargetFormat.FP8, TargetFormat.FP8, 32, true),
                Arguments.of(Architecture.OLMOE, TargetFormat.INT4, TargetFormat.INT8, 24, false));
    }

    @ParameterizedTest(name = "{0} experts {1} dense {2} group {3} fp8 layout {4}")
    @MethodSource("cases")
    void quantizedCheckpointComputesWhatItsDequantizedWeightsCompute(Architecture arch, TargetFormat experts,
            TargetFormat dense, int group, boolean fp8Layout, @TempDir Path tmp) throws IOException {
        Path source = TinyModels.bf16Checkpoint(arch);
        Path quantized = tmp.resolve("quantized");
        List<CheckpointQuantizer.Report> reports = CheckpointQuantizer.quantize(source, quantized,
                new CheckpointQuantizer.Options(experts, dense, group, fp8Layout));
        assertTrue(!reports.isEmpty(), "nothing was quantized");
        for (CheckpointQuantizer.Report r : reports) {
            double bound = r.format().startsWith("int4") ? 0.2 : 0.05;
            assertTrue(r.error().relativeRms() < bound, r.tensor() + " error " + r.error());
        }
        Path dequantized = tmp.resolve("dequantized");
        writeDequantized(source, quantized, dequantized);

        int[] expectedTokens = new int[8];
        int[] actualTokens = new int[8];
        float[] expected;
        float[] actual;
        try (MoeModel model = MoeModel.load(dequantized, TinyModels.options(64))) {
            expected = run(model, expectedTokens);
        }
        try (MoeModel model = MoeModel.load(quantized, TinyModels.options(64))) {
            assertTrue(model.checkpoint().quantization().isQuantized());
            actual = run(model, actualTokens);
        }
        assertArrayEquals(expected, actual, arch + ": logits differ from the dequantized model's");
        assertArrayEquals(expectedTokens, actualTokens, arch + ": greedy tokens differ");
        float[] original;
        try (MoeModel model = MoeModel.load(source, TinyModels.options(64))) {
            original = run(model, new int[8]);
        }
        double diff = 0, norm = 0;
        for (int i = 0; i < original.length; i++) {
            diff += Math.abs(original[i] - actual[i]);
            norm += Math.abs(original[i]);
        }
        assertTrue(diff > 0, "quantizing changed nothing: the quantized weights were not used");
        assertTrue(diff / norm < 0.5, "logits moved too far from the float model's: " + diff / norm);
    }

    @org.junit.jupiter.api.Test
    void expertsQuantizedAtStartAreTheWeightsMoeQuantizeWrites(@TempDir Path tmp) {
        for (TargetFormat f : new TargetFormat[] {TargetFormat.INT4, TargetFormat.INT8, TargetFormat.FP8, TargetFormat.MXFP4}) {
            // MXFP4 is written as gpt-oss ships it: its fused experts, transposed to output rows.
            Path source = TinyModels.bf16Checkpoint(f == TargetFormat.MXFP4 ? Architecture.GPT_OSS : Architecture.QWEN3_MOE);
            Path quantized = tmp.resolve(f.name());
            CheckpointQuantizer.quantize(source, quantized, new CheckpointQuantizer.Options(f, TargetFormat.KEEP, 32, false));
            ModelConfig config = ConfigParser.load(source);
            try (Checkpoint src = Checkpoint.open(source); Checkpoint q = Checkpoint.open(quantized);
                 java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofShared()) {
                var atStart = ExpertLoader.loadHosted(config, src, ExpertSelection.ALL)
                        .map(w -> WeightQuantizer.quantize(w, f, 32, arena));
                var onDisk = ExpertLoader.loadHosted(config, q, ExpertSelection.ALL);
                int compared = 0;
                for (int layer = 0; layer < config.numLayers(); layer++) {
                    for (int e : onDisk.hostedExperts(layer)) {
                        ExpertWeights a = atStart.expert(layer, e), b = onDisk.expert(layer, e);
                        for (int m = 0; m < a.matrices().size(); m++) {
                            WeightMatrix[] pair = {a.matrices().get(m), b.matrices().get(m)};
                            assertEquals(pair[1].formatName(), pair[0].formatName());
                            assertEquals(pair[1].byteSize(), pair[0].byteSize());
                            for (int r = 0; r < pair[0].rows(); r++) {
                                for (int c = 0; c < pair[0].cols(); c++) {
                                    assertEquals(pair[1].get(r, c), pair[0].get(r, c), f + " layer " + layer + " expert " + e);
                                }
                            }
                            compared++;
                        }
                    }
                }
                assertTrue(compared > 0);
            }
        }
    }

    @org.junit.jupiter.api.Test
    void mxfp4IsWrittenForGptOssExpertsOnlyAndTheRestIsRefusedPlainly(@TempDir Path tmp) {
        var mixtral = assertThrows(IllegalArgumentException.class, () -> CheckpointQuantizer.quantize(
                TinyModels.bf16Checkpoint(Architecture.MIXTRAL), tmp.resolve("a"),
                new CheckpointQuantizer.Options(TargetFormat.MXFP4, TargetFormat.KEEP, 32, false)));
        assertTrue(mixtral.getMessage().contains("gpt-oss") && mixtral.getMessage().contains("moe.expert.quantize=mxfp4"),
                mixtral.getMessage());
        var int4 = assertThrows(IllegalArgumentException.class, () -> CheckpointQuantizer.quantize(
                TinyModels.bf16Checkpoint(Architecture.GPT_OSS), tmp.resolve("b"),
                new CheckpointQuantizer.Options(TargetFormat.INT4, TargetFormat.KEEP, 32, false)));
        assertTrue(int4.getMessage().contains("mxfp4"), int4.getMessage());
        var dense = assertThrows(IllegalArgumentException.class, () -> CheckpointQuantizer.quantize(
                TinyModels.bf16Checkpoint(Architecture.GPT_OSS), tmp.resolve("c"),
                new CheckpointQuantizer.Options(TargetFormat.MXFP4, TargetFormat.INT8, 32, false)));
        assertTrue(dense.getMessage().contains("keeps attention"), dense.getMessage());
    }

    /** The quantized checkpoint with each quantized weight replaced by its dequantized float32 values. */
    static void writeDequantized(Path source, Path quantized, Path target) throws IOException {
        ModelConfig config = ConfigParser.load(source);
        Set<String> experts = new TreeSet<>(), dense = new TreeSet<>();
        CheckpointQuantizer.classify(config, experts, dense);
        List<TensorSpec> specs = new ArrayList<>();
        try (Checkpoint src = Checkpoint.open(source); Checkpoint q = Checkpoint.open(quantized)) {
            for (String name : src.names()) {
                Tensor t = src.tensor(name);
                if (!experts.contains(name) && !dense.contains(name)) {
                    specs.add(TensorSpec.copyOf(name, q.tensor(name)));
                    continue;
                }
                WeightMatrix w = q.matrix(name, t.shape()[0], t.shape()[1]);
                int rows = w.rows(), cols = w.cols();
                float[] values = new float[rows * cols];
                for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++) values[r * cols + c] = w.get(r, c);
                specs.add(new TensorSpec(name, DType.F32, new long[] {rows, cols}, target2 -> {
                    for (int i = 0; i < values.length; i++) TensorAccess.setFloat(target2, DType.F32, i, values[i]);
                }));
            }
            ShardedCheckpointWriter.write(target, specs, 1L << 40);
        }
        try (Stream<Path> files = Files.list(source)) {
            for (Path f : files.toList()) {
                String n = f.getFileName().toString();
                if (n.endsWith(".json") && !n.startsWith("model.safetensors")) Files.copy(f, target.resolve(n));
            }
        }
        assertEquals(false, Files.readString(target.resolve("config.json")).contains("quantization_config"));
    }

    static float[] run(MoeModel model, int[] out) {
        return TinyModels.greedy(model, PROMPT, out);
    }
}
