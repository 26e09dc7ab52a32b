package io.moeserve.runtime.family.qwen;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.config.ConfigReader;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.config.MoeConfig;
import io.moeserve.runtime.family.ExpectedTensor;
import io.moeserve.runtime.family.ModelFamily;
import io.moeserve.runtime.family.MoeLayers;
import io.moeserve.runtime.family.TensorRole;
import io.moeserve.runtime.model.GateScratch;
import io.moeserve.runtime.model.MoeBlock;
import io.moeserve.runtime.model.SoftmaxTopKGate;
import java.util.List;

/**
 * {@code Qwen2MoeForCausalLM}: q/k/v biases; softmax top-k, renormalised only with {@code norm_topk_prob}; a shared
 * expert ({@code shared_expert.}) scaled per token by {@code sigmoid(shared_expert_gate · x)}; dense layers by
 * {@code decoder_sparse_step} and {@code mlp_only_layers}.
 */
public final class Qwen2Moe extends ModelFamily {

    @Override
    public MoeConfig readMoe(ConfigReader c) {
        int e = c.positiveInt("num_experts");
        int k = c.topK("num_experts_per_tok", 4, e);
        return new MoeConfig(e, e, k, c.positiveInt("moe_intermediate_size"), c.positiveInt("shared_expert_intermediate_size"),
                new SoftmaxTopKGate.Config(c.boolOr("norm_topk_prob", false), 1f));
    }

    @Override
    public boolean[] sparseLayers(ConfigReader c, int layers) {
        return QwenLayers.sparse(c, layers);
    }

    @Override
    public AttentionConfig readAttention(ConfigReader c, int hidden, int heads, int layers) {
        int[] window = QwenLayers.slidingWindows(c, layers, true);
        return AttentionConfig.groupedQuery(c, hidden, heads, true, window).withBiases(c.boolOr("qkv_bias", true), false);
    }

    @Override
    public void moeTensors(ModelConfig c, int layer, List<ExpectedTensor> out) {
        super.moeTensors(c, layer, out);
        sharedExpertTensors(c, moePrefix(layer) + "shared_expert.", out);
        out.add(new ExpectedTensor(moePrefix(layer) + "shared_expert_gate.weight", new long[] {1, c.hiddenSize()},
                TensorRole.LINEAR));
    }

    @Override
    public MoeLayers moeLayers(ModelConfig c, Checkpoint ck, int maxTokens) {
        MoeConfig m = c.moe();
        var gateConfig = (SoftmaxTopKGate.Config) m.gate();
        GateScratch scratch = new GateScratch(maxTokens, m.numExperts());
        return (layer, routed) -> {
            String p = moePrefix(layer);
            var sharedGate = ck.matrix(p + "shared_expert_gate.weight", 1, c.hiddenSize());
            return new MoeBlock(m, c.hiddenSize(), maxTokens,
                    new SoftmaxTopKGate(linearGate(c, ck, layer), m.topK(), gateConfig, scratch), routed,
                    sharedExpert(c, ck, p + "shared_expert.", sharedGate));
        };
    }

    /** A dense layer, a gated shared expert and q/k/v biases. */
    @Override
    public void writeSampleConfig(ObjectNode c, SampleShape s) {
        c.put("model_type", "qwen2_moe");
        c.put("intermediate_size", s.expertWidth() * 2);
        c.put("moe_intermediate_size", s.expertWidth());
        c.put("shared_expert_intermediate_size", s.expertWidth() * 2);
        c.put("num_experts", s.experts());
        c.put("num_experts_per_tok", 4);
        c.put("norm_topk_prob", false);
        c.put("decoder_sparse_step", 1);
        c.putArray("mlp_only_layers").add(1);
        c.put("rms_norm_eps", 1e-6);
        c.put("rope_theta", 1e6);
        c.put("use_sliding_window", false);
        c.put("qkv_bias", true);
    }
}
