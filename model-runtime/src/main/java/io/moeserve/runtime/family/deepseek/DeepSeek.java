package io.moeserve.runtime.family.deepseek;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.config.ConfigReader;
import io.moeserve.runtime.config.GateConfig;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.config.MoeConfig;
import io.moeserve.runtime.config.RopeConfig;
import io.moeserve.runtime.config.RopeParameters;
import io.moeserve.runtime.family.ExpectedTensor;
import io.moeserve.runtime.family.ModelFamily;
import io.moeserve.runtime.family.MoeLayers;
import io.moeserve.runtime.family.TensorRole;
import io.moeserve.runtime.model.Gate;
import io.moeserve.runtime.model.GateScratch;
import io.moeserve.runtime.model.GroupLimitedGate;
import io.moeserve.runtime.model.MoeBlock;
import io.moeserve.runtime.model.SharedExpert;
import io.moeserve.runtime.model.SoftmaxTopKGate;
import java.util.List;

/**
 * {@code DeepseekV2ForCausalLM} and {@code DeepseekV3ForCausalLM}: multi-head latent attention (with or without a
 * q LoRA), with the softmax scale × mscale² under YaRN and interleaved RoPE on the rope slice; greedy or
 * group-limited routing ({@link GroupLimitedGate}), {@code routed_scaling_factor}; shared experts
 * ({@code shared_experts.}); the first {@code first_k_dense_replace} layers dense. V3 adds sigmoid scores with
 * {@code e_score_correction_bias} and ships a multi-token-prediction layer after the last, which transformers
 * ignores and so does this runtime.
 */
public final class DeepSeek extends ModelFamily {
    public static final DeepSeek V2 = new DeepSeek(false);
    public static final DeepSeek V3 = new DeepSeek(true);

    private final boolean v3;

    private DeepSeek(boolean v3) {
        this.v3 = v3;
    }

    @Override
    public MoeConfig readMoe(ConfigReader c) {
        int e = c.positiveInt("n_routed_experts");
        int k = c.topK("num_experts_per_tok", 8, e);
        int sharedCount = c.intOr("n_shared_experts", v3 ? 1 : 2);
        if (sharedCount < 0) throw c.error("n_shared_experts", "must not be negative");
        int expertWidth = c.positiveInt("moe_intermediate_size");
        String scoring = c.stringOr("scoring_func", v3 ? "sigmoid" : "softmax");
        String method = c.stringOr("topk_method", v3 ? "noaux_tc" : "greedy");
        boolean grouped;
        if (v3) {
            if (!scoring.equals("sigmoid")) throw c.error("scoring_func", "\"" + scoring + "\" is not supported for DeepSeek-V3 (sigmoid)");
            if (!method.equals("noaux_tc")) throw c.error("topk_method", "\"" + method + "\" is not supported for DeepSeek-V3 (noaux_tc)");
            grouped = true;
        } else {
            if (!scoring.equals("softmax")) throw c.error("scoring_func", "\"" + scoring + "\" is not supported for DeepSeek-V2 (softmax)");
            grouped = switch (method) {
                case "greedy" -> false;
                case "group_limited_greedy" -> true;
                default -> throw c.error("topk_method", "\"" + method + "\" is not supported (greedy, group_limited_greedy)");
            };
        }
        int groups = grouped ? c.positiveIntOr("n_group", 1) : 1;
        int topkGroups = grouped ? c.positiveIntOr("topk_group", 1) : 1;
        if (e % groups != 0) throw c.error("n_group", groups + " does not divide n_routed_experts " + e);
        if (topkGroups > groups) throw c.error("topk_group", topkGroups + " exceeds n_group " + groups);
        if (k > topkGroups * (e / groups)) throw c.error("num_experts_per_tok", k + " exceeds the experts in topk_group groups");
        if (v3 && (e / groups) < 2) throw c.error("n_group", "leaves fewer than 2 experts per group (group score is a top-2 sum)");
        double scale = c.doubleOr("routed_scaling_factor", 1.0);
        if (!(scale > 0)) throw c.error("routed_scaling_factor", "must be positive");
        // HF's DeepSeek-V2 always scales and never renormalises; V3 renormalises when norm_topk_prob is set.
        boolean norm = v3 && c.boolOr("norm_topk_prob", true);
        GateConfig gate = grouped ? new GroupLimitedGate.Config(v3, norm, (float) scale, groups, topkGroups)
                : new SoftmaxTopKGate.Config(false, (float) scale);
        return new MoeConfig(e, e, k, expertWidth, sharedCount * expertWidth, gate);
    }

    @Override
    public boolean[] sparseLayers(ConfigReader c, int layers) {
        boolean[] sparse = new boolean[layers];
        int firstDense = c.intOr("first_k_dense_replace", 0);
        if (firstDense < 0 || firstDense > layers) throw c.error("first_k_dense_replace", "must be within [0, " + layers + "]");
        int freq = c.positiveIntOr("moe_layer_freq", 1);
        for (int i = 0; i < layers; i++) sparse[i] = i >= firstDense && i % freq == 0;
        return sparse;
    }

    @Override
    public AttentionConfig readAttention(ConfigReader c, int hidden, int heads, int layers) {
        int qLora = c.has("q_lora_rank") ? c.positiveInt("q_lora_rank") : 0;
        var mla = new AttentionConfig.MlaDims(qLora, c.positiveInt("kv_lora_rank"), c.positiveInt("qk_nope_head_dim"),
                c.positiveInt("qk_rope_head_dim"), c.positiveInt("v_head_dim"), c.boolOr("attention_bias", false));
        if (mla.qkRopeHeadDim() % 2 != 0) throw c.error("qk_rope_head_dim", "must be even");
        float scale = (float) Math.pow(mla.qkHeadDim(), -0.5);
        // DeepSeek multiplies the softmax scale by mscale(factor, mscale_all_dim)² under YaRN (the original code).
        RopeParameters p = RopeParameters.read(c, 1e4);
        if (p.type().equals("yarn")) {
            double mscaleAll = p.doubleOr(c, "mscale_all_dim", 0);
            if (mscaleAll != 0) {
                double m = RopeConfig.yarnMscale(p.requireFactor(c, 1), mscaleAll);
                scale = (float) (scale * m * m);
            }
        }
        return new AttentionConfig(AttentionConfig.Kind.MULTI_HEAD_LATENT, heads, heads, mla.qkHeadDim(), false,
                mla.projectionBias(), AttentionConfig.QkNorm.NONE, Float.NaN, new int[layers], mla, scale, false);
    }

    @Override
    public RopeConfig readRope(ConfigReader c, AttentionConfig attention, int maxPositions) {
        boolean interleaved = !v3 || c.boolOr("rope_interleave", true);
        return RopeParameters.read(c, 1e4).toRope(c, attention.mla().qkRopeHeadDim(), interleaved, false, maxPositions);
    }

    @Override
    public void moeTensors(ModelConfig c, int layer, List<ExpectedTensor> out) {
        MoeConfig m = c.moe();
        String p = moePrefix(layer);
        out.add(new ExpectedTensor(p + "gate.weight", new long[] {m.numExperts(), c.hiddenSize()}, TensorRole.LINEAR));
        if (v3) out.add(new ExpectedTensor(p + "gate.e_score_correction_bias", new long[] {m.numExperts()}, TensorRole.SCORE_BIAS));
        routedExpertTensors(c, layer, out);
        if (m.sharedIntermediate() > 0) sharedExpertTensors(c, p + "shared_experts.", out);
    }

    /** Also V3's multi-token-prediction layers ({@code model.layers.{num_hidden_layers..}.*}), which HF ignores. */
    @Override
    public boolean isIgnored(ModelConfig c, String name) {
        return super.isIgnored(c, name) || v3 && isMultiTokenPredictionLayer(c, name);
    }

    @Override
    public MoeLayers moeLayers(ModelConfig c, Checkpoint ck, int maxTokens) {
        MoeConfig m = c.moe();
        GateScratch scratch = new GateScratch(maxTokens, m.numExperts());
        return (layer, routed) -> {
            String p = moePrefix(layer);
            Gate gate = switch (m.gate()) {
                case SoftmaxTopKGate.Config greedy -> new SoftmaxTopKGate(linearGate(c, ck, layer), m.topK(), greedy, scratch);
                case GroupLimitedGate.Config grouped -> new GroupLimitedGate(linearGate(c, ck, layer),
                        v3 ? ck.tensor(p + "gate.e_score_correction_bias", m.numExperts()).toFloatArray() : null,
                        m.topK(), grouped, scratch);
                default -> throw new IllegalStateException("not a DeepSeek gate: " + m.gate());
            };
            SharedExpert shared = m.sharedIntermediate() > 0 ? sharedExpert(c, ck, p + "shared_experts.", null) : null;
            return new MoeBlock(m, c.hiddenSize(), maxTokens, gate, routed, shared);
        };
    }

    /**
     * V2: group-limited routing, a scaling factor and YaRN; V3: a q LoRA, sigmoid routing with a correction bias,
     * and an MTP layer to be ignored; both a dense first layer and shared experts.
     */
    @Override
    public void writeSampleConfig(ObjectNode c, SampleShape s) {
        int hidden = s.hidden();
        int heads = s.heads();
        c.put("model_type", v3 ? "deepseek_v3" : "deepseek_v2");
        c.put("num_key_value_heads", heads);
        c.put("intermediate_size", s.expertWidth() * 2);
        c.put("moe_intermediate_size", s.expertWidth());
        c.put("n_routed_experts", s.experts());
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

    /** V3 checkpoints carry one multi-token-prediction layer after the last (its own norms and projection). */
    @Override
    public List<ExpectedTensor> unusedTensors(ModelConfig c) {
        return v3 ? multiTokenPredictionTensors(c) : List.of();
    }
}
