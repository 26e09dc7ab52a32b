package io.moeserve.runtime.family.qwen;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.config.ConfigReader;
import io.moeserve.runtime.config.MoeConfig;
import io.moeserve.runtime.family.ModelFamily;
import io.moeserve.runtime.model.SoftmaxTopKGate;

/**
 * {@code Qwen3MoeForCausalLM}: {@code head_dim} independent of hidden/heads; RMSNorm on each head of q and k;
 * softmax top-k, renormalised with {@code norm_topk_prob}; no shared expert; dense layers as Qwen2-MoE.
 */
public final class Qwen3Moe extends ModelFamily {

    @Override
    public MoeConfig readMoe(ConfigReader c) {
        int e = c.positiveInt("num_experts");
        int k = c.topK("num_experts_per_tok", 8, e);
        return new MoeConfig(e, e, k, c.positiveInt("moe_intermediate_size"), 0,
                new SoftmaxTopKGate.Config(c.boolOr("norm_topk_prob", false), 1f));
    }

    @Override
    public boolean[] sparseLayers(ConfigReader c, int layers) {
        return QwenLayers.sparse(c, layers);
    }

    @Override
    public AttentionConfig readAttention(ConfigReader c, int hidden, int heads, int layers) {
        int[] window = QwenLayers.slidingWindows(c, layers, false);
        boolean bias = c.boolOr("attention_bias", false);
        return AttentionConfig.groupedQuery(c, hidden, heads, true, window).withBiases(bias, bias)
                .withQkNorm(AttentionConfig.QkNorm.PER_HEAD);
    }

    /** A head_dim unrelated to hidden/heads, and a dense layer. */
    @Override
    public void writeSampleConfig(ObjectNode c, SampleShape s) {
        c.put("model_type", "qwen3_moe");
        c.put("intermediate_size", s.expertWidth() * 2);
        c.put("moe_intermediate_size", s.expertWidth());
        c.put("num_experts", s.experts());
        c.put("num_experts_per_tok", 2);
        c.put("norm_topk_prob", true);
        c.put("decoder_sparse_step", 1);
        c.putArray("mlp_only_layers").add(0);
        c.put("head_dim", s.hidden() / s.heads() * 2); // deliberately ≠ hidden/heads, as in Qwen3
        c.put("attention_bias", false);
        c.put("rms_norm_eps", 1e-6);
        c.put("rope_theta", 1e6);
        c.put("use_sliding_window", false);
    }
}
