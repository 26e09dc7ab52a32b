package io.moeserve.runtime.quantize;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.checkpoint.CheckpointException;
import io.moeserve.runtime.checkpoint.QuantizationConfig;
import io.moeserve.runtime.expert.ExpertWeights;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.TinyModels;
import java.nio.file.Path;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * A Mixtral-shaped checkpoint quantized by {@code moe quantize} (int4 or int8 experts, int8 attention and lm head,
 * groups of 32), run with int8 activations on and off: on, the matrices that can take panels have them (the tiny
 * model's down projections, 48 columns, cannot) and the logits move by the activations' rounding only; off, the
 * model computes exactly what it computes without the option.
 */
class Int8ActivationsModelTest {
    private static final int[] PROMPT = {5, 17, 42, 7, 99, 3, 64, 12};
    /**
     * Mean |Δ logit| over mean |logit|, mode on against off. Each activation moves by at most 1/254 of its block's
     * largest magnitude, per product a relative error well under 1% for these widths; through three layers, with
     * the mean taken over the vocabulary, a few percent is the most it can reach. Measured: 1.2% with int4 experts,
     * 0.9% with int8, the same at every vector width.
     */
    private static final double TOLERANCE = 0.03;

    @ParameterizedTest
    @EnumSource(value = TargetFormat.class, names = {"INT4", "INT8"})
    void int8ActivationsStayCloseAndOffIsTheExactPath(TargetFormat experts, @TempDir Path tmp) {
        Path dir = tmp.resolve("quantized");
        CheckpointQuantizer.quantize(TinyModels.bf16Checkpoint(Architecture.MIXTRAL), dir,
                new CheckpointQuantizer.Options(experts, TargetFormat.INT8, 32, false));
        float[] exact;
        float[] defaults;
        float[] on;
        try (MoeModel model = MoeModel.load(dir, TinyModels.options(64).withInt8Activations(false))) {
            exact = TinyModels.greedy(model, PROMPT, new int[4]);
            assertNull(model.experts().expert(0, 0).gate().panels());
        }
        try (MoeModel model = MoeModel.load(dir, TinyModels.options(64))) {
            defaults = TinyModels.greedy(model, PROMPT, new int[4]);
        }
        assertArrayEquals(defaults, exact, "int8 activations off must be the default path, bit for bit");
        try (MoeModel model = MoeModel.load(dir, TinyModels.options(64).withInt8Activations(true))) {
            ExpertWeights e = model.experts().expert(0, 0);
            assertNotNull(e.gate().panels(), "gate projection without panels");
            assertNotNull(e.up().panels(), "up projection without panels");
            assertNull(e.down().panels(), "48 columns are no whole blocks of 32; down keeps the exact path");
            on = TinyModels.greedy(model, PROMPT, new int[4]);
        }
        double diff = 0, norm = 0;
        for (int i = 0; i < exact.length; i++) {
            diff += Math.abs(on[i] - exact[i]);
            norm += Math.abs(exact[i]);
        }
        assertTrue(diff > 0, "int8 activations changed nothing: the panels were not used");
        assertTrue(diff / norm < TOLERANCE, experts + ": logits moved by " + diff / norm + " of their magnitude");
    }

    /** {@code moe quantize --input-activations int8}'s declaration turns the mode on by itself, for what its groups target. */
    @org.junit.jupiter.api.Test
    void aCheckpointThatDeclaresInt8ActivationsRunsWithThem(@TempDir Path tmp) throws Exception {
        Path dir = tmp.resolve("declared");
        CheckpointQuantizer.quantize(TinyModels.bf16Checkpoint(Architecture.MIXTRAL), dir,
                new CheckpointQuantizer.Options(TargetFormat.INT4, TargetFormat.INT8, 32, false));
        float[] on;
        try (MoeModel model = MoeModel.load(dir, TinyModels.options(64).withInt8Activations(true))) {
            on = TinyModels.greedy(model, PROMPT, new int[4]);
        }
        assertEquals(2, CheckpointQuantizer.declareInt8Activations(dir));
        try (MoeModel model = MoeModel.load(dir, TinyModels.options(64))) {
            assertNotNull(model.experts().expert(0, 0).gate().panels(), "the declaration did not turn int8 activations on");
            assertArrayEquals(on, TinyModels.greedy(model, PROMPT, new int[4]));
        }
    }

    @org.junit.jupiter.api.Test
    void inputActivationsAreReadAsCompressedTensorsDeclaresThem() throws Exception {
        String[] accepted = {"{\"num_bits\": 8, \"type\": \"int\", \"symmetric\": true, \"dynamic\": true, \"strategy\": \"token\"}",
            "{\"num_bits\": 8, \"type\": \"int\", \"dynamic\": true, \"strategy\": \"group\", \"group_size\": 32}"};
        for (String a : accepted) assertTrue(scheme(a).int8Activations(), a);
        // FP8 activations (W8A8 FP8) and static int8 ones (calibrated input_scale) keep the float path, as before.
        String[] float32 = {"{\"num_bits\": 8, \"type\": \"float\", \"dynamic\": true, \"strategy\": \"token\"}",
            "{\"num_bits\": 8, \"type\": \"int\", \"symmetric\": true, \"dynamic\": false, \"strategy\": \"tensor\"}", "null"};
        for (String a : float32) assertFalse(scheme(a).int8Activations(), a);
        for (String a : new String[] {"{\"num_bits\": 4, \"type\": \"int\", \"dynamic\": true}",
            "{\"num_bits\": 8, \"type\": \"int\", \"symmetric\": false, \"dynamic\": true}"}) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> scheme(a), a);
            assertTrue(e.getMessage().contains("config_groups.group_0.input_activations"), e.getMessage());
            assertTrue(e.getMessage().contains("not supported"), e.getMessage());
        }
    }

    private static QuantizationConfig.Scheme scheme(String inputActivations) throws Exception {
        String json = "{\"quant_method\": \"compressed-tensors\", \"format\": \"pack-quantized\", \"config_groups\": {\"group_0\": {"
                + "\"targets\": [\"Linear\"], \"weights\": {\"num_bits\": 4, \"type\": \"int\", \"symmetric\": true, \"strategy\": \"group\","
                + " \"group_size\": 32}, \"input_activations\": " + inputActivations + "}}}";
        QuantizationConfig config = QuantizationConfig.parse(new com.fasterxml.jackson.databind.ObjectMapper().readTree(json), "config.json");
        return config.schemeFor("model.layers.0.mlp.experts.0.gate_proj");
    }
}
