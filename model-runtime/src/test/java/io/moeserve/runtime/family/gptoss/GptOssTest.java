package io.moeserve.runtime.family.gptoss;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.config.ConfigException;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.model.GateScratch;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.TinyModels;
import io.moeserve.runtime.synthetic.SyntheticCheckpointGenerator;
import io.moeserve.runtime.synthetic.SyntheticConfigs;
import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * What the reference comparison cannot show by itself: that the synthetic gpt-oss checkpoint, on the prompt the
 * comparison uses, really reaches each trait (the clamp changes the logits, the sliding window is shorter than the
 * prompt and changes them), plus the router's rule on hand-made logits and the config's errors.
 */
class GptOssTest {
    private static final int[] PROMPT = {11, 200, 37, 5, 301, 99, 42, 7, 256, 3, 140, 18, 77};
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path tmp;

    @Test
    void theClampAndTheSlidingWindowChangeTheTestPromptsLogits() throws IOException {
        float[] base = logits(TinyModels.checkpoint(Architecture.GPT_OSS));
        float[] unclamped = logits(edited("unclamped", c -> c.put("swiglu_limit", 1e6)));
        float[] unwindowed = logits(edited("full", c -> {
            var types = c.putArray("layer_types");
            for (int i = 0; i < c.get("num_hidden_layers").asInt(); i++) types.add("full_attention");
        }));
        assertTrue(maxDifference(base, unclamped) > 1e-2, "the clamp is never reached: " + maxDifference(base, unclamped));
        assertTrue(maxDifference(base, unwindowed) > 1e-2, "the window never cuts: " + maxDifference(base, unwindowed));
    }

    /**
     * The hub's MXFP4 checkpoint and the float checkpoint transformers would save after dequantizing it (same
     * weights; F32 and BF16 for everything else): the kernels read MXFP4 in place, yet compute what the float
     * weights compute, bit for bit.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void anMxfp4CheckpointComputesWhatItsDequantizedTwinComputes(DType dtype) {
        var spec = new SyntheticCheckpointGenerator.Spec(Architecture.GPT_OSS, SyntheticConfigs.Size.TINY, dtype, 99,
                1L << 40, false);
        Path mxfp4 = tmp.resolve("mxfp4-" + dtype);
        Path twin = tmp.resolve("twin-" + dtype);
        SyntheticCheckpointGenerator.generate(mxfp4, spec.withExperts(SyntheticCheckpointGenerator.ExpertFormat.MXFP4));
        SyntheticCheckpointGenerator.generate(twin, spec.withExperts(SyntheticCheckpointGenerator.ExpertFormat.MXFP4_DEQUANTIZED));
        int[] quantizedTokens = new int[8];
        int[] twinTokens = new int[8];
        float[] quantized;
        float[] dequantized;
        try (MoeModel m = MoeModel.load(mxfp4, TinyModels.options(64))) {
            assertEquals("mxfp4", m.experts().expert(0, 0).gateUp().formatName());
            quantized = TinyModels.greedy(m, PROMPT, quantizedTokens);
        }
        try (MoeModel m = MoeModel.load(twin, TinyModels.options(64))) {
            dequantized = TinyModels.greedy(m, PROMPT, twinTokens);
        }
        assertTrue(maxDifference(quantized, dequantized) <= 1e-4f, "logits differ by " + maxDifference(quantized, dequantized));
        assertArrayEquals(twinTokens, quantizedTokens);
        assertArrayEquals(dequantized, quantized, "the same weights should give the same bits");
    }

    @Test
    void theRouterTakesTheTopLogitsWithTheirBiasThenASoftmaxOverThoseOnly() {
        // Weights are the identity, so a token's logits are its hidden state plus the bias.
        int e = 6;
        try (Arena arena = Arena.ofConfined()) {
            var data = arena.allocate(4L * e * e);
            for (int i = 0; i < e; i++) data.setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, (long) i * e + i, 1f);
            float[] bias = {0f, 0f, 0f, 3f, 0f, 0f};
            var gate = new GptOssGate(new WeightMatrix("router", data, DType.F32, e, e), bias, 2, new GateScratch(1, e));
            float[] x = {1f, 2.5f, 0.5f, -1f, 2f, 0f};
            int[] experts = new int[2];
            float[] weights = new float[2];
            gate.route(1, x, experts, weights, new io.moeserve.runtime.kernel.NaiveMatmulKernels());
            assertArrayEquals(new int[] {1, 3}, experts);
            double w0 = 1 / (1 + Math.exp(2.0 - 2.5));
            assertEquals(w0, weights[0], 1e-6);
            assertEquals(1 - w0, weights[1], 1e-6);
        }
    }

    @Test
    void badSettingsAreRefusedNamingTheKey() throws IOException {
        Path dir = edited("bad-types", c -> c.putArray("layer_types").add("full_attention"));
        var e = assertThrows(ConfigException.class, () -> MoeModel.load(dir, TinyModels.options(8)));
        assertTrue(e.getMessage().contains("layer_types"), e.getMessage());
        Path limit = edited("bad-limit", c -> c.put("swiglu_limit", -1));
        e = assertThrows(ConfigException.class, () -> MoeModel.load(limit, TinyModels.options(8)));
        assertTrue(e.getMessage().contains("swiglu_limit"), e.getMessage());
    }

    private static float[] logits(Path dir) {
        try (MoeModel model = MoeModel.load(dir, TinyModels.options(64))) {
            return TinyModels.greedy(model, PROMPT, new int[1]);
        }
    }

    private static float maxDifference(float[] a, float[] b) {
        float worst = 0;
        for (int i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
        return worst;
    }

    /** The tiny checkpoint with its config.json edited (the weights linked, not copied). */
    private Path edited(String name, Consumer<ObjectNode> edit) throws IOException {
        Path source = TinyModels.checkpoint(Architecture.GPT_OSS);
        Path dir = Files.createDirectories(tmp.resolve(name));
        try (Stream<Path> files = Files.list(source)) {
            for (Path f : files.toList()) {
                if (!f.getFileName().toString().equals("config.json")) Files.createSymbolicLink(dir.resolve(f.getFileName()), f);
            }
        }
        ObjectNode config = (ObjectNode) JSON.readTree(source.resolve("config.json").toFile());
        edit.accept(config);
        Files.writeString(dir.resolve("config.json"), JSON.writeValueAsString(config));
        return dir;
    }
}
