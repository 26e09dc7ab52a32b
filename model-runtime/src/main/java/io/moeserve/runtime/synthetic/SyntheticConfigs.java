package io.moeserve.runtime.synthetic;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.family.Architecture;
import java.util.Locale;

/**
 * config.json contents for synthetic models of every architecture, in each family's own spelling, in a few sizes.
 *
 * <p>The tiny sizes exercise each family's distinctive paths on purpose: Qwen2-MoE gets a dense layer, a gated
 * shared expert and q/k/v biases; Qwen3-MoE a head_dim unrelated to hidden/heads and a dense layer; OLMoE a
 * clip_qkv; DeepSeek-V2 group-limited routing, a scaling factor and YaRN; DeepSeek-V3 a q LoRA, sigmoid routing with
 * a correction bias, a dense first layer and an MTP layer to be ignored; MoE++ all four zero-computation experts.
 */
public final class SyntheticConfigs {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Model sizes the generator knows. */
    public enum Size {
        /** A few hundred thousand parameters: unit tests. */
        TINY,
        /** Tens of millions: the built-in default model and end-to-end tests. */
        SMALL,
        /** The benchmark model of the runtime issue (Mixtral-shaped, ~1.2 B parameters). */
        BENCH;

        public static Size parse(String s) {
            return valueOf(s.toUpperCase(Locale.ROOT).replace('-', '_'));
        }
    }

    private SyntheticConfigs() {}

    /** The vocabulary size of a preset. */
    public static int vocabSize(Architecture arch, Size size) {
        return config(arch, size, "float32").get("vocab_size").asInt();
    }

    public static ObjectNode config(Architecture arch, Size size, String torchDtype) {
        ObjectNode c = JSON.createObjectNode();
        c.putArray("architectures").add(arch.hfClassName());
        c.put("hidden_act", "silu");
        c.put("torch_dtype", torchDtype);
        c.put("initializer_range", 0.02);
        c.put("tie_word_embeddings", false);
        c.put("bos_token_id", 0);
        int vocab;
        int hidden;
        int layers;
        int heads;
        int kvHeads;
        int expertWidth;
        int experts;
        switch (size) {
            case TINY -> {
                vocab = 384;
                hidden = 64;
                layers = 3;
                heads = 4;
                kvHeads = 2;
                expertWidth = 48;
                experts = 8;
            }
            case SMALL -> {
                vocab = 4096;
                hidden = 256;
                layers = 4;
                heads = 8;
                kvHeads = 4;
                expertWidth = 512;
                experts = 8;
            }
            default -> {
                vocab = 32000;
                hidden = 1024;
                layers = 16;
                heads = 16;
                kvHeads = 4;
                expertWidth = 2816;
                experts = 8;
            }
        }
        c.put("vocab_size", vocab);
        c.put("hidden_size", hidden);
        c.put("num_hidden_layers", layers);
        c.put("num_attention_heads", heads);
        c.put("num_key_value_heads", kvHeads);
        c.put("max_position_embeddings", 4096);
        switch (arch) {
            case MIXTRAL -> {
                c.put("model_type", "mixtral");
                c.put("intermediate_size", expertWidth);
                c.put("num_local_experts", experts);
                c.put("num_experts_per_tok", 2);
                c.put("rms_norm_eps", 1e-5);
                c.put("rope_theta", 1e6);
                c.putNull("sliding_window");
                c.put("head_dim", hidden / heads);
                c.put("router_jitter_noise", 0.0);
            }
            case QWEN2_MOE -> {
                c.put("model_type", "qwen2_moe");
                c.put("intermediate_size", expertWidth * 2);
                c.put("moe_intermediate_size", expertWidth);
                c.put("shared_expert_intermediate_size", expertWidth * 2);
                c.put("num_experts", experts);
                c.put("num_experts_per_tok", 4);
                c.put("norm_topk_prob", false);
                c.put("decoder_sparse_step", 1);
                c.putArray("mlp_only_layers").add(1);
                c.put("rms_norm_eps", 1e-6);
                c.put("rope_theta", 1e6);
                c.put("use_sliding_window", false);
                c.put("qkv_bias", true);
            }
            case QWEN3_MOE -> {
                c.put("model_type", "qwen3_moe");
                c.put("intermediate_size", expertWidth * 2);
                c.put("moe_intermediate_size", expertWidth);
                c.put("num_experts", experts);
                c.put("num_experts_per_tok", 2);
                c.put("norm_topk_prob", true);
                c.put("decoder_sparse_step", 1);
                c.putArray("mlp_only_layers").add(0);
                c.put("head_dim", hidden / heads * 2); // deliberately ≠ hidden/heads, as in Qwen3
                c.put("attention_bias", false);
                c.put("rms_norm_eps", 1e-6);
                c.put("rope_theta", 1e6);
                c.put("use_sliding_window", false);
            }
            case OLMOE -> {
                c.put("model_type", "olmoe");
                c.put("intermediate_size", expertWidth);
                c.put("num_experts", experts);
                c.put("num_experts_per_tok", 4);
                c.put("norm_topk_prob", false);
                c.put("clip_qkv", 3.0);
                c.put("attention_bias", false);
                c.put("rms_norm_eps", 1e-5);
                c.put("rope_theta", 1e4);
                c.put("num_key_value_heads", heads);
            }
            case DEEPSEEK_V2, DEEPSEEK_V3 -> deepseek(c, arch, hidden, heads, expertWidth, experts);
            case MOE_PLUS_PLUS -> {
                c.put("model_type", "MoE++");
                c.put("intermediate_size", expertWidth);
                ArrayNode e = c.putArray("num_experts");
                e.add(experts + 4);
                c.put("moe_expert_interval", 1);
                c.put("moe_use_mixtral_gating", false);
                c.put("moe_2layer_gate", true);
                c.put("moe_use_logits_norm", false);
                c.put("moe_gate_norm_std", 1.0);
                c.put("moe_feature_no_mul_topk", false);
                c.put("rms_norm_eps", 1e-6);
                c.put("rope_theta", 1e4);
                c.putNull("rope_scaling");
                c.put("pretraining_tp", 1);
            }
        }
        return c;
    }

    private static void deepseek(ObjectNode c, Architecture arch, int hidden, int heads, int expertWidth, int experts) {
        boolean v3 = arch == Architecture.DEEPSEEK_V3;
        c.put("model_type", v3 ? "deepseek_v3" : "deepseek_v2");
        c.put("num_key_value_heads", heads);
        c.put("intermediate_size", expertWidth * 2);
        c.put("moe_intermediate_size", expertWidth);
        c.put("n_routed_experts", experts);
        c.put("n_shared_experts", 1);
        c.put("num_experts_per_tok", 2);
        c.put("first_k_dense_replace", 1);
        c.put("moe_layer_freq", 1);
        c.put("n_group", 4);
        c.put("topk_group", 2);
        c.put("topk_method", v3 ? "noaux_tc" : "group_limited_greedy");
        c.put("scoring_func", v3 ? "sigmoid" : "softmax");
        c.put("norm_topk_prob", v3);
        c.put("routed_scaling_factor", v3 ? 2.5 : 2.0);
        if (v3) c.put("q_lora_rank", Math.max(16, hidden / 2));
        else c.putNull("q_lora_rank");
        c.put("kv_lora_rank", Math.max(16, hidden / 2));
        c.put("qk_nope_head_dim", Math.max(8, hidden / heads));
        c.put("qk_rope_head_dim", Math.max(8, hidden / heads / 2));
        c.put("v_head_dim", Math.max(8, hidden / heads));
        c.put("attention_bias", false);
        c.put("rms_norm_eps", 1e-6);
        c.put("rope_theta", 1e4);
        c.put("max_position_embeddings", 4096);
        ObjectNode yarn = c.putObject("rope_scaling");
        yarn.put("type", "yarn");
        yarn.put("factor", 4.0);
        yarn.put("original_max_position_embeddings", 1024);
        yarn.put("beta_fast", 32);
        yarn.put("beta_slow", 1);
        yarn.put("mscale", v3 ? 1.0 : 0.707);
        yarn.put("mscale_all_dim", v3 ? 1.0 : 0.707);
        if (v3) {
            c.put("rope_interleave", true);
            c.put("num_nextn_predict_layers", 1);
        }
    }
}
