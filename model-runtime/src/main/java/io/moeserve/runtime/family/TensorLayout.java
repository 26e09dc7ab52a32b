package io.moeserve.runtime.family;

import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.config.ModelConfig;
import java.util.ArrayList;
import java.util.List;

/**
 * The exact Hugging Face tensor names and shapes of a model, derived from its config: the parts every family
 * shares (embedding, norms, attention, dense MLPs, LM head) here, the MoE block's from its {@link ModelFamily}.
 *
 * <p>One source of truth for two users: the loader fetches every tensor by these names (and afterwards insists
 * that nothing in the checkpoint was left unused), and the synthetic checkpoint generator writes exactly these.
 * Routed experts are listed in the per-expert layout of hub checkpoints; transformers v5's fused layout
 * ({@code mlp.experts.gate_up_proj [E, 2I, H]}, {@code mlp.experts.down_proj [E, H, I]}) is accepted by the
 * loader as an alternative (see {@link #fusedExpertTensors}).
 */
public final class TensorLayout {
    private final ModelConfig c;
    private final ModelFamily family;

    public TensorLayout(ModelConfig config) {
        this.c = config;
        this.family = config.architecture().family();
    }

    /** Tensors the loader may leave unused (the family's rule: stale rotary buffers, DeepSeek-V3's and GLM-4.5's MTP layers). */
    public boolean isIgnored(String name) {
        return family.isIgnored(c, name);
    }

    public static String embedTokens() {
        return "model.embed_tokens.weight";
    }

    public static String finalNorm() {
        return "model.norm.weight";
    }

    public static String lmHead() {
        return "lm_head.weight";
    }

    public static String layer(int i) {
        return "model.layers." + i + ".";
    }

    /** transformers v5 fused expert tensors of layer i: {gate_up_proj, down_proj}. */
    public static String[] fusedExpertTensors(int i) {
        String p = layer(i) + "mlp.experts.";
        return new String[] {p + "gate_up_proj", p + "down_proj"};
    }

    /** All tensors of a checkpoint of this config, in per-expert (hub) layout. */
    public List<ExpectedTensor> expectedTensors() {
        List<ExpectedTensor> out = new ArrayList<>();
        long h = c.hiddenSize();
        long v = c.vocabSize();
        out.add(t(embedTokens(), TensorRole.EMBEDDING, v, h));
        for (int i = 0; i < c.numLayers(); i++) {
            out.add(t(layer(i) + "input_layernorm.weight", TensorRole.NORM, h));
            out.add(t(layer(i) + "post_attention_layernorm.weight", TensorRole.NORM, h));
            attention(i, out);
            if (c.isSparse(i)) family.moeTensors(c, i, out);
            else mlp(layer(i) + "mlp.", c.denseIntermediate(), h, out);
        }
        out.add(t(finalNorm(), TensorRole.NORM, h));
        if (!c.tieWordEmbeddings()) out.add(t(lmHead(), TensorRole.LINEAR, v, h));
        return out;
    }

    private void attention(int i, List<ExpectedTensor> out) {
        AttentionConfig a = c.attention();
        String p = layer(i) + "self_attn.";
        long h = c.hiddenSize();
        if (a.kind() == AttentionConfig.Kind.GROUPED_QUERY) {
            long q = (long) a.numHeads() * a.headDim();
            long kv = (long) a.numKvHeads() * a.headDim();
            out.add(t(p + "q_proj.weight", TensorRole.LINEAR, q, h));
            out.add(t(p + "k_proj.weight", TensorRole.LINEAR, kv, h));
            out.add(t(p + "v_proj.weight", TensorRole.LINEAR, kv, h));
            out.add(t(p + "o_proj.weight", TensorRole.LINEAR, h, q));
            if (a.qkvBias()) {
                out.add(t(p + "q_proj.bias", TensorRole.BIAS, q));
                out.add(t(p + "k_proj.bias", TensorRole.BIAS, kv));
                out.add(t(p + "v_proj.bias", TensorRole.BIAS, kv));
            }
            if (a.outputBias()) out.add(t(p + "o_proj.bias", TensorRole.BIAS, h));
            if (a.sinks()) out.add(t(p + "sinks", TensorRole.ATTENTION_SINK, a.numHeads()));
            switch (a.qkNorm()) {
                case PER_HEAD -> {
                    out.add(t(p + "q_norm.weight", TensorRole.NORM, a.headDim()));
                    out.add(t(p + "k_norm.weight", TensorRole.NORM, a.headDim()));
                }
                case WHOLE_PROJECTION -> {
                    out.add(t(p + "q_norm.weight", TensorRole.NORM, q));
                    out.add(t(p + "k_norm.weight", TensorRole.NORM, kv));
                }
                case NONE -> { }
            }
            return;
        }
        AttentionConfig.MlaDims m = a.mla();
        long heads = a.numHeads();
        long qWidth = heads * m.qkHeadDim();
        if (m.qLoraRank() == 0) {
            out.add(t(p + "q_proj.weight", TensorRole.LINEAR, qWidth, h));
        } else {
            out.add(t(p + "q_a_proj.weight", TensorRole.LINEAR, m.qLoraRank(), h));
            if (m.projectionBias()) out.add(t(p + "q_a_proj.bias", TensorRole.BIAS, m.qLoraRank()));
            out.add(t(p + "q_a_layernorm.weight", TensorRole.NORM, m.qLoraRank()));
            out.add(t(p + "q_b_proj.weight", TensorRole.LINEAR, qWidth, m.qLoraRank()));
        }
        out.add(t(p + "kv_a_proj_with_mqa.weight", TensorRole.LINEAR, m.kvLoraRank() + m.qkRopeHeadDim(), h));
        if (m.projectionBias()) out.add(t(p + "kv_a_proj_with_mqa.bias", TensorRole.BIAS, m.kvLoraRank() + m.qkRopeHeadDim()));
        out.add(t(p + "kv_a_layernorm.weight", TensorRole.NORM, m.kvLoraRank()));
        out.add(t(p + "kv_b_proj.weight", TensorRole.LINEAR, heads * (m.qkNopeHeadDim() + m.vHeadDim()), m.kvLoraRank()));
        out.add(t(p + "o_proj.weight", TensorRole.LINEAR, h, heads * m.vHeadDim()));
        if (m.projectionBias()) out.add(t(p + "o_proj.bias", TensorRole.BIAS, h));
    }

    /** Appends a SwiGLU MLP's three projections under {@code p}. */
    static void mlp(String p, long width, long h, List<ExpectedTensor> out) {
        out.add(t(p + "gate_proj.weight", TensorRole.LINEAR, width, h));
        out.add(t(p + "up_proj.weight", TensorRole.LINEAR, width, h));
        out.add(t(p + "down_proj.weight", TensorRole.LINEAR, h, width));
    }

    private static ExpectedTensor t(String name, TensorRole role, long... shape) {
        return new ExpectedTensor(name, shape, role);
    }
}
