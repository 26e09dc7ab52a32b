package io.moeserve.runtime.family.gptoss;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.config.ConfigReader;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.config.MoeConfig;
import io.moeserve.runtime.config.RopeConfig;
import io.moeserve.runtime.config.RopeParameters;
import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.expert.ExpertWeights;
import io.moeserve.runtime.family.ExpectedTensor;
import io.moeserve.runtime.family.ExpertProjections;
import io.moeserve.runtime.family.ModelFamily;
import io.moeserve.runtime.family.MoeLayers;
import io.moeserve.runtime.family.TensorRole;
import io.moeserve.runtime.model.GateScratch;
import io.moeserve.runtime.model.MoeBlock;
import java.util.List;

/**
 * {@code GptOssForCausalLM} (OpenAI's gpt-oss-20b and -120b): grouped-query attention with biases on q, k, v and o,
 * a head_dim of its own, attention sinks, sliding-window and full layers alternating as {@code layer_types} says
 * (even layers slide when it says nothing), YaRN RoPE on half-split pairs; every layer MoE, routed by
 * {@link GptOssGate}; experts with biases and the clamped SwiGLU ({@link io.moeserve.runtime.expert.ClampedGlu}),
 * stored fused per layer, either as transformers holds them ({@code experts.gate_up_proj [E, H, 2I]} and
 * {@code down_proj [E, I, H]}, inputs first, gate and up interleaved) or as the hub ships them, MXFP4
 * ({@link GptOssExperts}). RMSNorm multiplies in float32 before any cast, as this runtime always does.
 */
public final class GptOss extends ModelFamily {

    @Override
    public double defaultRmsNormEps() {
        return 1e-5;
    }

    @Override
    public MoeConfig readMoe(ConfigReader c) {
        int e = c.has("num_local_experts") ? c.positiveInt("num_local_experts") : c.positiveIntOr("num_experts", 128);
        String topKey = c.has("num_experts_per_tok") ? "num_experts_per_tok" : "experts_per_token";
        int k = c.topK(topKey, 4, e);
        double limit = c.doubleOr("swiglu_limit", 7.0);
        if (!(limit > 0)) throw c.error("swiglu_limit", "must be positive, got " + limit);
        return new MoeConfig(e, e, k, c.positiveInt("intermediate_size"), 0, new GptOssGate.Config(), (float) limit);
    }

    @Override
    public AttentionConfig readAttention(ConfigReader c, int hidden, int heads, int layers) {
        int window = c.has("sliding_window") ? c.positiveInt("sliding_window") : 128;
        int[] windows = c.slidingWindowsByLayerType(layers, window);
        if (windows == null) {
            // GptOssConfig.__post_init__: even layers slide, odd layers attend to everything.
            windows = new int[layers];
            for (int i = 0; i < layers; i += 2) windows[i] = window;
        }
        boolean bias = c.boolOr("attention_bias", true);
        return AttentionConfig.groupedQuery(c, hidden, heads, true, windows).withBiases(bias, bias).withSinks(true);
    }

    @Override
    public RopeConfig readRope(ConfigReader c, AttentionConfig attention, int maxPositions) {
        return RopeParameters.read(c, 150000).toRope(c, attention.headDim(), false, false, maxPositions);
    }

    /** The router is {@code mlp.router}, the experts one fused set per layer under {@code mlp.experts.}. */
    @Override
    public String expertPrefix(int layer, int expert) {
        return moePrefix(layer) + "experts.";
    }

    @Override
    public ExpertProjections expertProjections() {
        return new ExpertProjections(null, "gate_up_proj", "down_proj");
    }

    @Override
    public boolean acceptsFusedExperts() {
        return false;
    }

    @Override
    public void moeTensors(ModelConfig c, int layer, List<ExpectedTensor> out) {
        MoeConfig m = c.moe();
        String p = moePrefix(layer);
        long e = m.numExperts();
        long h = c.hiddenSize();
        long w = m.expertIntermediate();
        out.add(new ExpectedTensor(p + "router.weight", new long[] {e, h}, TensorRole.LINEAR));
        out.add(new ExpectedTensor(p + "router.bias", new long[] {e}, TensorRole.BIAS));
        out.add(new ExpectedTensor(p + "experts.gate_up_proj", new long[] {e, h, 2 * w}, TensorRole.EXPERTS_IN_OUT));
        out.add(new ExpectedTensor(p + "experts.gate_up_proj_bias", new long[] {e, 2 * w}, TensorRole.BIAS));
        out.add(new ExpectedTensor(p + "experts.down_proj", new long[] {e, w, h}, TensorRole.EXPERTS_IN_OUT));
        out.add(new ExpectedTensor(p + "experts.down_proj_bias", new long[] {e, h}, TensorRole.BIAS));
    }

    @Override
    public ExpertWeights[] loadExperts(ModelConfig c, Checkpoint ck, int layer, ExpertSelection hosted, boolean validateAll) {
        return GptOssExperts.load(c, ck, expertPrefix(layer, 0), layer, hosted);
    }

    @Override
    public MoeLayers moeLayers(ModelConfig c, Checkpoint ck, int maxTokens) {
        MoeConfig m = c.moe();
        GateScratch scratch = new GateScratch(maxTokens, m.numExperts());
        return (layer, routed) -> {
            String p = moePrefix(layer);
            var gate = new GptOssGate(ck.matrix(p + "router.weight", m.numExperts(), c.hiddenSize()),
                    ck.tensor(p + "router.bias", m.numExperts()).toFloatArray(), m.topK(), scratch);
            return new MoeBlock(m, c.hiddenSize(), maxTokens, gate, routed);
        };
    }

    /**
     * A window smaller than the tests' prompts, explicit layer types (slide, full, slide), sinks, YaRN without
     * truncation as gpt-oss configures it, a head_dim other than hidden / heads, a swiglu_limit low enough that
     * random weights reach the clamp, and an expert width that MXFP4 can hold.
     */
    @Override
    public void writeSampleConfig(ObjectNode c, SampleShape s) {
        int layers = c.get("num_hidden_layers").asInt();
        c.put("model_type", "gpt_oss");
        // Whole MXFP4 groups of 32 along both expert inputs (hidden and this width), as the format needs.
        c.put("intermediate_size", (s.expertWidth() + 31) / 32 * 32);
        c.put("num_local_experts", s.experts());
        c.put("num_experts_per_tok", 4);
        c.put("experts_per_token", 4);
        c.put("head_dim", Math.max(8, s.hidden() / s.heads() + 16 - (s.hidden() / s.heads()) % 16));
        c.put("attention_bias", true);
        c.put("sliding_window", 5);
        ArrayNode types = c.putArray("layer_types");
        for (int i = 0; i < layers; i++) types.add(i % 2 == 0 ? "sliding_attention" : "full_attention");
        c.put("rms_norm_eps", 1e-5);
        c.put("rope_theta", 150000.0);
        ObjectNode yarn = c.putObject("rope_scaling");
        yarn.put("rope_type", "yarn");
        yarn.put("factor", 32.0);
        yarn.put("beta_fast", 32.0);
        yarn.put("beta_slow", 1.0);
        yarn.put("truncate", false);
        yarn.put("original_max_position_embeddings", 128);
        c.put("max_position_embeddings", 4096);
        c.put("swiglu_limit", 1.5);
        c.put("router_aux_loss_coef", 0.9);
        c.put("output_router_logits", false);
    }
}
