package io.moeserve.runtime.family.olmoe;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.config.ConfigReader;
import io.moeserve.runtime.config.MoeConfig;
import io.moeserve.runtime.family.ModelFamily;
import io.moeserve.runtime.model.SoftmaxTopKGate;

/**
 * {@code OlmoeForCausalLM}: RMSNorm over the whole q and k projections; q, k and v clamped to
 * [-clip_qkv, clip_qkv] when set; softmax top-k, renormalised with {@code norm_topk_prob}; every layer MoE.
 */
public final class Olmoe extends ModelFamily {

    @Override
    public double defaultRmsNormEps() {
        return 1e-5;
    }

    @Override
    public MoeConfig readMoe(ConfigReader c) {
        int e = c.positiveIntOr("num_experts", 64);
        int k = c.topK("num_experts_per_tok", 8, e);
        return new MoeConfig(e, e, k, c.positiveInt("intermediate_size"), 0,
                new SoftmaxTopKGate.Config(c.boolOr("norm_topk_prob", false), 1f));
    }

    @Override
    public AttentionConfig readAttention(ConfigReader c, int hidden, int heads, int layers) {
        boolean bias = c.boolOr("attention_bias", false);
        AttentionConfig a = AttentionConfig.groupedQuery(c, hidden, heads, true, new int[layers]).withBiases(bias, bias)
                .withQkNorm(AttentionConfig.QkNorm.WHOLE_PROJECTION);
        if (!c.has("clip_qkv")) return a;
        float clip = (float) c.doubleOr("clip_qkv", 0);
        if (!(clip > 0)) throw c.error("clip_qkv", "must be positive or null");
        return a.withClipQkv(clip);
    }

    /** clip_qkv, and as many key/value heads as query heads, as OLMoE has. */
    @Override
    public void writeSampleConfig(ObjectNode c, SampleShape s) {
        c.put("model_type", "olmoe");
        c.put("intermediate_size", s.expertWidth());
        c.put("num_experts", s.experts());
        c.put("num_experts_per_tok", 4);
        c.put("norm_topk_prob", false);
        c.put("clip_qkv", 3.0);
        c.put("attention_bias", false);
        c.put("rms_norm_eps", 1e-5);
        c.put("rope_theta", 1e4);
        c.put("num_key_value_heads", s.heads());
    }
}
