package io.moeserve.runtime.family.mixtral;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.config.ConfigReader;
import io.moeserve.runtime.config.MoeConfig;
import io.moeserve.runtime.config.RopeConfig;
import io.moeserve.runtime.config.RopeParameters;
import io.moeserve.runtime.family.ExpertProjections;
import io.moeserve.runtime.family.ModelFamily;
import io.moeserve.runtime.family.TensorLayout;
import io.moeserve.runtime.model.SoftmaxTopKGate;
import java.util.Arrays;

/**
 * {@code MixtralForCausalLM}: every layer MoE, softmax top-k renormalised, experts as {@code w1/w3/w2} under
 * {@code block_sparse_moe.}, an optional sliding window on every layer, rope_theta 1e6 by default.
 */
public final class Mixtral extends ModelFamily {

    @Override
    public double defaultRmsNormEps() {
        return 1e-5;
    }

    @Override
    public MoeConfig readMoe(ConfigReader c) {
        int e = c.has("num_local_experts") ? c.positiveInt("num_local_experts") : c.positiveIntOr("num_experts", 8);
        int k = c.topK("num_experts_per_tok", 2, e);
        return new MoeConfig(e, e, k, c.positiveInt("intermediate_size"), 0, new SoftmaxTopKGate.Config(true, 1f));
    }

    @Override
    public AttentionConfig readAttention(ConfigReader c, int hidden, int heads, int layers) {
        int[] window = new int[layers];
        if (c.has("sliding_window")) Arrays.fill(window, c.positiveInt("sliding_window"));
        return AttentionConfig.groupedQuery(c, hidden, heads, true, window);
    }

    @Override
    public RopeConfig readRope(ConfigReader c, AttentionConfig attention, int maxPositions) {
        return RopeParameters.read(c, 1e6).toRope(c, attention.headDim(), false, false, maxPositions);
    }

    @Override
    public String moePrefix(int layer) {
        return TensorLayout.layer(layer) + "block_sparse_moe.";
    }

    @Override
    public ExpertProjections expertProjections() {
        return new ExpertProjections("w1.weight", "w3.weight", "w2.weight");
    }

    @Override
    public void writeSampleConfig(ObjectNode c, SampleShape s) {
        c.put("model_type", "mixtral");
        c.put("intermediate_size", s.expertWidth());
        c.put("num_local_experts", s.experts());
        c.put("num_experts_per_tok", 2);
        c.put("rms_norm_eps", 1e-5);
        c.put("rope_theta", 1e6);
        c.putNull("sliding_window");
        c.put("head_dim", s.hidden() / s.heads());
        c.put("router_jitter_noise", 0.0);
    }
}
