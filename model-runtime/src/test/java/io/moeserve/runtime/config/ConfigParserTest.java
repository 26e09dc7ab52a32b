package io.moeserve.runtime.config;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.synthetic.SyntheticConfigs;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

class ConfigParserTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static ObjectNode config(Architecture arch) {
        return SyntheticConfigs.config(arch, SyntheticConfigs.Size.TINY, "float32");
    }

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void everyArchitectureParsesAndUnknownKeysAreIgnored(Architecture arch) {
        ObjectNode c = config(arch);
        c.put("some_future_key", "whatever");
        c.putObject("quantization_config_we_ignore").put("x", 1);
        ModelConfig m = ConfigParser.parse(c, "config.json");
        assertEquals(arch, m.architecture());
        assertTrue(m.numSparseLayers() > 0);
    }

    @ParameterizedTest
    @CsvSource({
            "MIXTRAL, hidden_size, -4, hidden_size",
            "MIXTRAL, num_key_value_heads, 3, num_key_value_heads",
            "MIXTRAL, num_experts_per_tok, 9, num_experts_per_tok",
            "MIXTRAL, rms_norm_eps, 0, rms_norm_eps",
            "MIXTRAL, hidden_size, '\"abc\"', hidden_size",
            "QWEN2_MOE, decoder_sparse_step, 0, decoder_sparse_step",
            "DEEPSEEK_V3, n_group, 3, n_group",
            "DEEPSEEK_V3, topk_group, 9, topk_group",
            "DEEPSEEK_V2, first_k_dense_replace, 99, first_k_dense_replace",
            "MOE_PLUS_PLUS, moe_expert_interval, 2, moe_expert_interval",
            "GLM4_MOE, n_group, 3, n_group",
            "GLM4_MOE, n_group, 8, n_group",
            "GLM4_MOE, topk_group, 5, topk_group",
            "GLM4_MOE, num_experts_per_tok, 5, num_experts_per_tok",
            "GLM4_MOE, n_shared_experts, -1, n_shared_experts",
            "GLM4_MOE, routed_scaling_factor, 0, routed_scaling_factor",
            "GLM4_MOE, first_k_dense_replace, 4, first_k_dense_replace",
            "GLM4_MOE, partial_rotary_factor, 0, partial_rotary_factor",
            "GLM4_MOE, partial_rotary_factor, 1.5, partial_rotary_factor",
            "GLM4_MOE, partial_rotary_factor, 0.125, partial_rotary_factor",
            "GLM4_MOE, partial_rotary_factor, '\"half\"', partial_rotary_factor",
            "MIXTRAL, eos_token_id, 999999, eos_token_id",
            "MIXTRAL, hidden_act, '\"gelu\"', hidden_act"})
    void impossibleValuesAreRejectedNamingTheKey(Architecture arch, String key, String value, String named) throws Exception {
        ObjectNode c = config(arch);
        c.set(key, JSON.readTree(value));
        var e = assertThrows(ConfigException.class, () -> ConfigParser.parse(c, "/models/x/config.json"));
        assertTrue(e.getMessage().contains(named) && e.getMessage().contains("/models/x/config.json"), e.getMessage());
    }

    @Test
    void unsupportedArchitectureIsNamed() {
        ObjectNode c = config(Architecture.MIXTRAL);
        c.putArray("architectures").add("LlamaForCausalLM");
        var e = assertThrows(ConfigException.class, () -> ConfigParser.parse(c, "config.json"));
        assertTrue(e.getMessage().contains("LlamaForCausalLM") && e.getMessage().contains("MixtralForCausalLM"), e.getMessage());
    }

    @Test
    void aMergedCheckpointsAliasTableIsReadAndAnImpossibleOneNamed() {
        ObjectNode c = config(Architecture.MIXTRAL);
        int layers = c.get("num_hidden_layers").asInt();
        int n = c.get("num_local_experts").asInt();
        var table = c.putArray("expert_alias");
        for (int l = 0; l < layers; l++) {
            var row = table.addArray();
            for (int e = 0; e < n; e++) row.add(e / 2);
        }
        ModelConfig m = ConfigParser.parse(c, "config.json");
        assertEquals(n, m.moe().numExperts(), "the gate keeps its outputs");
        assertEquals(n / 2, m.moe().numFfnExperts(), "the merged experts are the FFN experts");
        assertEquals(1, m.moe().aliasOf(0)[3]);
        ((com.fasterxml.jackson.databind.node.ArrayNode) table.get(0)).set(0, n);
        var outOfRange = assertThrows(ConfigException.class, () -> ConfigParser.parse(c, "config.json"));
        assertTrue(outOfRange.getMessage().contains("expert_alias") && outOfRange.getMessage().contains("layer 0 expert 0"), outOfRange.getMessage());
        // Experts 0 and 1 both sent to merged expert 1: merged expert 0 has no member.
        ((com.fasterxml.jackson.databind.node.ArrayNode) table.get(0)).set(0, 1);
        ((com.fasterxml.jackson.databind.node.ArrayNode) table.get(0)).set(1, 1);
        var unused = assertThrows(ConfigException.class, () -> ConfigParser.parse(c, "config.json"));
        assertTrue(unused.getMessage().contains("never uses merged expert 0"), unused.getMessage());
        c.putArray("expert_alias").add(1);
        var tooShort = assertThrows(ConfigException.class, () -> ConfigParser.parse(c, "config.json"));
        assertTrue(tooShort.getMessage().contains("one entry per decoder layer"), tooShort.getMessage());
    }

    @Test
    void theThreeRopeSpellingsAgree() {
        ObjectNode a = config(Architecture.DEEPSEEK_V3); // rope_theta + rope_scaling{type}
        ObjectNode b = a.deepCopy();
        ObjectNode scaling = (ObjectNode) b.get("rope_scaling");
        scaling.put("rope_type", scaling.get("type").asText());
        scaling.remove("type");
        ObjectNode c = a.deepCopy();
        ObjectNode params = ((ObjectNode) c.get("rope_scaling")).deepCopy();
        params.put("rope_type", params.get("type").asText());
        params.remove("type");
        params.put("rope_theta", c.get("rope_theta").asDouble());
        c.remove("rope_scaling");
        c.remove("rope_theta");
        c.set("rope_parameters", params);
        RopeConfig ra = ConfigParser.parse(a, "a").rope();
        RopeConfig rb = ConfigParser.parse(b, "b").rope();
        RopeConfig rc = ConfigParser.parse(c, "c").rope();
        assertArrayEquals(ra.invFreq(), rb.invFreq());
        assertArrayEquals(ra.invFreq(), rc.invFreq());
        assertEquals(ConfigParser.parse(a, "a").attention().softmaxScale(), ConfigParser.parse(c, "c").attention().softmaxScale());
    }

    @Test
    void yarnMatchesTheReferenceVectors() {
        // DeepSeek-V3: dim 64, base 1e4, factor 40, original 4096: ramp from dim 10 to 23 (moe-architectures §1.0.5).
        double[] f = RopeConfig.yarnInvFreq(1e4, 64, 40, 4096, 32, 1, true);
        double[] plain = RopeConfig.defaultInvFreq(1e4, 64);
        assertEquals(plain[0], f[0], 1e-12, "dims below low keep their frequency");
        assertEquals(plain[10], f[10], 1e-12);
        assertEquals(plain[31] / 40, f[31], 1e-9, "dims above high are interpolated");
        assertTrue(f[15] < plain[15] && f[15] > plain[15] / 40);
        assertEquals(1.34657, RopeConfig.yarnMscale(32, 1), 1e-5, "gpt-oss attention factor");
    }

    @Test
    void deepseekSoftmaxScaleCarriesMscaleSquared() {
        ObjectNode c = config(Architecture.DEEPSEEK_V3);
        ModelConfig m = ConfigParser.parse(c, "config.json");
        int qk = m.attention().mla().qkHeadDim();
        double mscale = 0.1 * Math.log(4.0) + 1;
        assertEquals(Math.pow(qk, -0.5) * mscale * mscale, m.attention().softmaxScale(), 1e-6);
        assertEquals(1.0, m.rope().attentionFactor(), 1e-12);
        assertTrue(m.rope().interleaved());
    }

    @Test
    void glmRotatesTheFirstPartOfEachHeadWithFrequenciesOverThatPart() {
        ModelConfig m = ConfigParser.parse(config(Architecture.GLM4_MOE), "c");
        assertEquals(24, m.attention().headDim(), "head_dim 3/2 of hidden/heads");
        assertEquals(12, m.rope().rotaryDim(), "int(head_dim · partial_rotary_factor 0.5)");
        assertArrayEquals(RopeConfig.defaultInvFreq(1e6, 12), m.rope().invFreq(), "theta^(-2i/rotary dim), not /head_dim");
        assertTrue(!m.rope().interleaved(), "half-split pairs (i, i + rotaryDim/2)");
        assertEquals((float) Math.pow(24, -0.5), m.attention().softmaxScale(), "the scale is over the whole head");

        ObjectNode v5 = config(Architecture.GLM4_MOE); // transformers v5 keeps the factor in rope_parameters
        v5.remove("partial_rotary_factor");
        v5.putObject("rope_parameters").put("rope_type", "default").put("rope_theta", 1e6).put("partial_rotary_factor", 0.25);
        assertEquals(6, ConfigParser.parse(v5, "c").rope().rotaryDim());
        ObjectNode absent = config(Architecture.GLM4_MOE);
        absent.remove("partial_rotary_factor");
        assertEquals(12, ConfigParser.parse(absent, "c").rope().rotaryDim(), "the class default 0.5");
        ObjectNode nested = v5.deepCopy();
        ((ObjectNode) nested.get("rope_parameters")).put("partial_rotary_factor", 0.125);
        var e = assertThrows(ConfigException.class, () -> ConfigParser.parse(nested, "config.json"));
        assertTrue(e.getMessage().contains("rope_parameters.partial_rotary_factor"), e.getMessage());
    }

    @Test
    void glmReadsItsAttentionRoutingAndLayers() {
        ModelConfig m = ConfigParser.parse(config(Architecture.GLM4_MOE), "c");
        assertTrue(m.attention().qkvBias() && !m.attention().outputBias(), "attention_bias: q/k/v biases, never o");
        assertEquals(AttentionConfig.QkNorm.PER_HEAD, m.attention().qkNorm());
        assertEquals(2, m.attention().numKvHeads());
        assertArrayEquals(new boolean[] {false, true, true}, m.sparseLayers());
        assertEquals(2 * 48, m.moe().sharedIntermediate(), "n_shared_experts · moe_intermediate_size");
        assertEquals(1e-5f, m.rmsNormEps());
        assertEquals("sigmoid with selection bias, top 2 of 4 groups, renormalised, scaled by 2.5", m.moe().gate().describe());

        ObjectNode air = config(Architecture.GLM4_MOE); // GLM-4.5-Air: no biases, no q/k norm, class defaults
        for (String k : new String[] {"attention_bias", "use_qk_norm", "n_group", "topk_group", "norm_topk_prob",
                "routed_scaling_factor", "n_shared_experts", "first_k_dense_replace", "rms_norm_eps"}) {
            air.remove(k);
        }
        ModelConfig a = ConfigParser.parse(air, "c");
        assertTrue(!a.attention().qkvBias() && a.attention().qkNorm() == AttentionConfig.QkNorm.NONE);
        assertEquals("sigmoid with selection bias, top 1 of 1 groups, renormalised, scaled by 1.0", a.moe().gate().describe());
        assertEquals(48, a.moe().sharedIntermediate());
        assertArrayEquals(new boolean[] {false, true, true}, a.sparseLayers());
        assertEquals(1e-5f, a.rmsNormEps());
    }

    @Test
    void sparseLayersFollowEachFamilysRules() {
        ModelConfig qwen2 = ConfigParser.parse(config(Architecture.QWEN2_MOE), "c");
        assertArrayEquals(new boolean[] {true, false, true}, qwen2.sparseLayers());
        ModelConfig v3 = ConfigParser.parse(config(Architecture.DEEPSEEK_V3), "c");
        assertArrayEquals(new boolean[] {false, true, true}, v3.sparseLayers());
        ObjectNode q3 = config(Architecture.QWEN3_MOE);
        q3.putArray("mlp_only_layers");
        q3.put("decoder_sparse_step", 2);
        assertArrayEquals(new boolean[] {false, true, false}, ConfigParser.parse(q3, "c").sparseLayers());
    }
}
