package io.moeserve.runtime.family.gptoss;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.family.Architecture;
import org.junit.jupiter.api.Test;

/**
 * openai/gpt-oss-20b's config.json, as the hub serves it (keys and values from its model card's config, written out
 * here), parses into the model transformers builds: 24 layers alternating a 128-token window with full attention,
 * 64 heads of 64 over 8 KV heads, 32 experts top-4 with the clamp at 7, YaRN over rope_theta 150000 without
 * truncation (low ≈ 8.09, high ≈ 17.40, attention factor ≈ 1.3466).
 */
class GptOssConfigTest {
    private static final String GPT_OSS_20B = """
            {"architectures": ["GptOssForCausalLM"], "attention_bias": true, "attention_dropout": 0.0,
             "eos_token_id": 200002, "experts_per_token": 4, "head_dim": 64, "hidden_act": "silu",
             "hidden_size": 2880, "initial_context_length": 4096, "initializer_range": 0.02,
             "intermediate_size": 2880, "layer_types": [%s], "max_position_embeddings": 131072,
             "model_type": "gpt_oss", "num_attention_heads": 64, "num_experts_per_tok": 4, "num_hidden_layers": 24,
             "num_key_value_heads": 8, "num_local_experts": 32, "output_router_logits": false, "pad_token_id": 199999,
             "quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
               "model.embed_tokens", "lm_head"], "quant_method": "mxfp4"},
             "rms_norm_eps": 1e-05, "rope_scaling": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 32.0,
               "original_max_position_embeddings": 4096, "rope_type": "yarn", "truncate": false},
             "rope_theta": 150000, "router_aux_loss_coef": 0.9, "sliding_window": 128, "swiglu_limit": 7.0,
             "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.55.0.dev0",
             "use_cache": true, "vocab_size": 201088}
            """;

    @Test
    void gptOss20bParsesIntoWhatTransformersBuilds() throws Exception {
        StringBuilder types = new StringBuilder();
        for (int i = 0; i < 24; i++) types.append(i > 0 ? "," : "").append(i % 2 == 0 ? "\"sliding_attention\"" : "\"full_attention\"");
        ObjectNode json = (ObjectNode) new ObjectMapper().readTree(GPT_OSS_20B.formatted(types));
        ModelConfig c = ConfigParser.parse(json, "gpt-oss-20b/config.json");
        assertEquals(Architecture.GPT_OSS, c.architecture());
        assertEquals(24, c.numLayers());
        assertEquals(24, c.numSparseLayers());
        assertEquals(64, c.attention().numHeads());
        assertEquals(8, c.attention().numKvHeads());
        assertEquals(64, c.attention().headDim());
        assertTrue(c.attention().qkvBias() && c.attention().outputBias() && c.attention().sinks());
        for (int i = 0; i < 24; i++) assertEquals(i % 2 == 0 ? 128 : 0, c.attention().slidingWindow()[i], "layer " + i);
        assertEquals(32, c.moe().numExperts());
        assertEquals(4, c.moe().topK());
        assertEquals(2880, c.moe().expertIntermediate());
        assertEquals(7.0f, c.moe().swigluLimit());
        assertEquals(1e-5, c.rmsNormEps(), 1e-12);
        // YaRN as transformers computes it: factor 32, L0 4096, no truncation of the correction range.
        assertEquals(64, c.rope().rotaryDim());
        assertEquals(0.1 * Math.log(32) + 1, c.rope().attentionFactor(), 1e-9);
        double[] f = c.rope().invFreq();
        double low = 64 * Math.log(4096 / (32 * 2 * Math.PI)) / (2 * Math.log(150000));
        double high = 64 * Math.log(4096 / (1 * 2 * Math.PI)) / (2 * Math.log(150000));
        assertEquals(8.0928, low, 1e-4);
        assertEquals(17.3980, high, 1e-4);
        for (int j = 0; j < f.length; j++) {
            double base = Math.pow(150000, 2.0 * j / 64);
            double ramp = Math.min(1, Math.max(0, (j - low) / (high - low)));
            double expected = (1 / (32 * base)) * ramp + (1 / base) * (1 - ramp);
            assertEquals(expected, f[j], 1e-6 * (1 / base), "inv_freq[" + j + "]");
        }
    }
}
