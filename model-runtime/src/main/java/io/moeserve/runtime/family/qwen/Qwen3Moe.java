package io.moeserve.runtime.family.qwen;

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
}
