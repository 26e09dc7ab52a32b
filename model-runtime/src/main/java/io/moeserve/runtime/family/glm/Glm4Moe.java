package io.moeserve.runtime.family.glm;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.config.ConfigReader;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.config.MoeConfig;
import io.moeserve.runtime.config.RopeConfig;
import io.moeserve.runtime.config.RopeParameters;
import io.moeserve.runtime.family.ExpectedTensor;
import io.moeserve.runtime.family.ModelFamily;
import io.moeserve.runtime.family.MoeLayers;
import io.moeserve.runtime.family.TensorRole;
import io.moeserve.runtime.model.GateScratch;
import io.moeserve.runtime.model.GroupLimitedGate;
import io.moeserve.runtime.model.MoeBlock;
import io.moeserve.runtime.model.SharedExpert;
import java.util.List;

/**
 * {@code Glm4MoeForCausalLM} (GLM-4.5, GLM-4.5-Air, and GLM-4.6/4.7, which reuse the class): grouped-query
 * attention with a {@code head_dim} of its own, q/k/v biases without an o bias ({@code attention_bias}), optional
 * per-head q/k RMSNorm before RoPE ({@code use_qk_norm}), and RoPE on only the first
 * {@code int(head_dim · partial_rotary_factor)} elements of each head (half-split pairs within them, frequencies
 * over that width; the rest passes through). The first {@code first_k_dense_replace} layers are dense; the MoE
 * block routes as DeepSeek-V3 does ({@code noaux_tc}: sigmoid scores, {@code e_score_correction_bias} for
 * selection only, {@code n_group}/{@code topk_group}, {@code norm_topk_prob}, {@code routed_scaling_factor}) and
 * adds {@code n_shared_experts} shared experts as one MLP. The multi-token-prediction layers shipped after the
 * last layer are ignored, as transformers ignores them (low-bit-formats-and-glm.md §10).
 */
public final class Glm4Moe extends ModelFamily {

    @Override
    public double defaultRmsNormEps() {
        return 1e-5;
    }

    @Override
    public MoeConfig readMoe(ConfigReader c) {
        int e = c.positiveInt("n_routed_experts");
        int k = c.topK("num_experts_per_tok", 8, e);
        int sharedCount = c.intOr("n_shared_experts", 1);
        if (sharedCount < 0) throw c.error("n_shared_experts", "must not be negative");
        int expertWidth = c.positiveInt("moe_intermediate_size");
        int groups = c.positiveIntOr("n_group", 1);
        int topkGroups = c.positiveIntOr("topk_group", 1);
        if (e % groups != 0) throw c.error("n_group", groups + " does not divide n_routed_experts " + e);
        if (e / groups < 2) throw c.error("n_group", "leaves fewer than 2 experts per group (group score is a top-2 sum)");
        if (topkGroups > groups) throw c.error("topk_group", topkGroups + " exceeds n_group " + groups);
        if (k > topkGroups * (e / groups)) throw c.error("num_experts_per_tok", k + " exceeds the experts in topk_group groups");
        double scale = c.doubleOr("routed_scaling_factor", 1.0);
        if (!(scale > 0)) throw c.error("routed_scaling_factor", "must be positive");
        var gate = new GroupLimitedGate.Config(true, c.boolOr("norm_topk_prob", true), (float) scale, groups, topkGroups);
        return new MoeConfig(e, e, k, expertWidth, sharedCount * expertWidth, gate);
    }

    @Override
    public boolean[] sparseLayers(ConfigReader c, int layers) {
        int firstDense = c.intOr("first_k_dense_replace", 1);
        if (firstDense < 0 || firstDense > layers) throw c.error("first_k_dense_replace", "must be within [0, " + layers + "]");
        boolean[] sparse = new boolean[layers];
        for (int i = firstDense; i < layers; i++) sparse[i] = true;
        return sparse;
    }

    @Override
    public AttentionConfig readAttention(ConfigReader c, int hidden, int heads, int layers) {
        AttentionConfig a = AttentionConfig.groupedQuery(c, hidden, heads, true, new int[layers])
                .withBiases(c.boolOr("attention_bias", false), false);
        return c.boolOr("use_qk_norm", false) ? a.withQkNorm(AttentionConfig.QkNorm.PER_HEAD) : a;
    }

    /**
     * Half-split RoPE over the first {@code int(head_dim · partial_rotary_factor)} elements of each head, its
     * frequencies (and YaRN's ramp, if any) computed over that width as transformers does. The factor is read
     * where transformers v5 keeps it ({@code rope_parameters}), else at the top level, else 0.5, the class's
     * default.
     */
    @Override
    public RopeConfig readRope(ConfigReader c, AttentionConfig attention, int maxPositions) {
        RopeParameters p = RopeParameters.read(c, 1e4);
        String key = p.has("partial_rotary_factor") ? p.keyPrefix() + "partial_rotary_factor" : "partial_rotary_factor";
        double factor = p.has("partial_rotary_factor") ? p.doubleOr(c, "partial_rotary_factor", 0.5)
                : c.doubleOr("partial_rotary_factor", 0.5);
        if (!(factor > 0 && factor <= 1)) throw c.error(key, "must be within (0, 1], got " + factor);
        int rotaryDim = (int) (attention.headDim() * factor); // Python's int(): truncation
        if (rotaryDim < 2 || rotaryDim % 2 != 0) {
            throw c.error(key, "gives " + rotaryDim + " rotated elements of head_dim " + attention.headDim() + "; they must be even and at least 2");
        }
        return p.toRope(c, rotaryDim, false, false, maxPositions);
    }

    @Override
    public void moeTensors(ModelConfig c, int layer, List<ExpectedTensor> out) {
        MoeConfig m = c.moe();
        String p = moePrefix(layer);
        out.add(new ExpectedTensor(p + "gate.weight", new long[] {m.numExperts(), c.hiddenSize()}, TensorRole.LINEAR));
        out.add(new ExpectedTensor(p + "gate.e_score_correction_bias", new long[] {m.numExperts()}, TensorRole.SCORE_BIAS));
        routedExpertTensors(c, layer, out);
        if (m.sharedIntermediate() > 0) sharedExpertTensors(c, p + "shared_experts.", out);
    }

    /** Also the multi-token-prediction layers ({@code model.layers.{num_hidden_layers..}.*}), which HF ignores. */
    @Override
    public boolean isIgnored(ModelConfig c, String name) {
        return super.isIgnored(c, name) || isMultiTokenPredictionLayer(c, name);
    }

    @Override
    public MoeLayers moeLayers(ModelConfig c, Checkpoint ck, int maxTokens) {
        MoeConfig m = c.moe();
        var gateConfig = (GroupLimitedGate.Config) m.gate();
        GateScratch scratch = new GateScratch(maxTokens, m.numExperts());
        return (layer, routed) -> {
            String p = moePrefix(layer);
            var gate = new GroupLimitedGate(linearGate(c, ck, layer),
                    ck.tensor(p + "gate.e_score_correction_bias", m.numExperts()).toFloatArray(), m.topK(), gateConfig, scratch);
            SharedExpert shared = m.sharedIntermediate() > 0 ? sharedExpert(c, ck, p + "shared_experts.", null) : null;
            return new MoeBlock(m, c.hiddenSize(), maxTokens, gate, routed, shared);
        };
    }

    /**
     * A head_dim unrelated to hidden/heads (3/2 of it) with half of each head rotated, q/k/v biases and q/k norms,
     * real groups (4, 2 kept), two shared experts' width, a dense first layer, and an MTP layer to be ignored.
     */
    @Override
    public void writeSampleConfig(ObjectNode c, SampleShape s) {
        c.put("model_type", "glm4_moe");
        c.put("intermediate_size", s.expertWidth() * 2);
        c.put("moe_intermediate_size", s.expertWidth());
        c.put("n_routed_experts", s.experts());
        c.put("n_shared_experts", 2);
        c.put("num_experts_per_tok", 2);
        c.put("first_k_dense_replace", 1);
        c.put("n_group", 4);
        c.put("topk_group", 2);
        c.put("norm_topk_prob", true);
        c.put("routed_scaling_factor", 2.5);
        c.put("head_dim", s.hidden() / s.heads() * 3 / 2); // ≠ hidden/heads, as GLM-4.5's 128 ≠ 5120/96
        c.put("partial_rotary_factor", 0.5);
        c.put("attention_bias", true);
        c.put("use_qk_norm", true);
        c.put("rms_norm_eps", 1e-5);
        c.put("rope_theta", 1e6);
        c.put("num_nextn_predict_layers", 1);
    }

    /** GLM-4.5 checkpoints carry a multi-token-prediction layer after the last. */
    @Override
    public List<ExpectedTensor> unusedTensors(ModelConfig c) {
        return multiTokenPredictionTensors(c);
    }
}
