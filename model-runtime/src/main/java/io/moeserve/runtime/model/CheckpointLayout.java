package io.moeserve.runtime.model;

import java.util.ArrayList;
import java.util.List;

/**
 * The exact Hugging Face tensor names and shapes of each architecture, derived from its config.
 *
 * <p>One source of truth for two users: the loader fetches every tensor by these names (and afterwards insists
 * that nothing in the checkpoint was left unused), and the synthetic checkpoint generator writes exactly these.
 * Routed experts are listed in the per-expert layout of hub checkpoints; transformers v5's fused layout
 * ({@code mlp.experts.gate_up_proj [E, 2I, H]}, {@code mlp.experts.down_proj [E, H, I]}) is accepted by the
 * loader as an alternative (see {@link #fusedExpertTensors}).
 */
public final class CheckpointLayout {
    private final ModelConfig c;

    public CheckpointLayout(ModelConfig config) {
        this.c = config;
    }

    /** Tensors the loader may leave unused: stale rotary buffers, and DeepSeek-V3's multi-token-prediction layers
     * (model.layers.{num_hidden_layers..}.*), which HF ignores too. */
    public boolean isIgnored(String name) {
        if (name.endsWith(".rotary_emb.inv_freq")) return true;
        if (c.architecture() == Architecture.DEEPSEEK_V3 && name.startsWith("model.layers.")) {
            int end = name.indexOf('.', "model.layers.".length());
            try {
                return Integer.parseInt(name.substring("model.layers.".length(), end)) >= c.numLayers();
            } catch (RuntimeException e) {
                return false;
            }
        }
        return false;
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

    /** Prefix of the MoE block of layer i ("block_sparse_moe." for Mixtral, "mlp.moe." for MoE++, else "mlp."). */
    public String moePrefix(int i) {
        return layer(i) + switch (c.architecture()) {
            case MIXTRAL -> "block_sparse_moe.";
            case MOE_PLUS_PLUS -> "mlp.moe.";
            default -> "mlp.";
        };
    }

    /** Prefix of routed expert e of layer i. */
    public String expertPrefix(int i, int e) {
        return moePrefix(i) + (c.architecture() == Architecture.MOE_PLUS_PLUS ? "experts.experts." : "experts.") + e + ".";
    }

    /** Names of the (gate, up, down) projections of a routed expert; MoE++ fuses gate and up into up_proj. */
    public String[] expertProjectionNames() {
        return switch (c.architecture()) {
            case MIXTRAL -> new String[] {"w1.weight", "w3.weight", "w2.weight"};
            case MOE_PLUS_PLUS -> new String[] {null, "up_proj.weight", "down_proj.weight"};
            default -> new String[] {"gate_proj.weight", "up_proj.weight", "down_proj.weight"};
        };
    }

    /** transformers v5 fused expert tensors of layer i: {gate_up_proj, down_proj}. */
    public String[] fusedExpertTensors(int i) {
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
            if (c.isSparse(i)) moe(i, out);
            else mlp(layer(i) + "mlp.", c.denseIntermediate(), out);
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

    private void mlp(String p, long width, List<ExpectedTensor> out) {
        long h = c.hiddenSize();
        out.add(t(p + "gate_proj.weight", TensorRole.LINEAR, width, h));
        out.add(t(p + "up_proj.weight", TensorRole.LINEAR, width, h));
        out.add(t(p + "down_proj.weight", TensorRole.LINEAR, h, width));
    }

    private void moe(int i, List<ExpectedTensor> out) {
        MoeConfig m = c.moe();
        long h = c.hiddenSize();
        long e = m.numExperts();
        long w = m.expertIntermediate();
        String p = moePrefix(i);
        if (c.architecture() == Architecture.MOE_PLUS_PLUS) {
            if (m.moePlusPlus().twoLayerGate()) {
                out.add(t(p + "gate.wg.0.weight", TensorRole.LINEAR, 8 * e, h));
                out.add(t(p + "gate.wg.2.weight", TensorRole.LINEAR, e, 8 * e));
            } else {
                out.add(t(p + "gate.wg.weight", TensorRole.LINEAR, e, h));
            }
            out.add(t(p + "gate.gate_map.weight", TensorRole.LINEAR, e, e));
            for (int x = 0; x < m.numFfnExperts(); x++) {
                out.add(t(expertPrefix(i, x) + "up_proj.weight", TensorRole.LINEAR, 2 * w, h));
                out.add(t(expertPrefix(i, x) + "down_proj.weight", TensorRole.LINEAR, h, w));
            }
            for (int x = m.firstConstantExpertId(); x < m.firstConstantExpertId() + MoeConfig.MoePlusPlus.CONSTANT_EXPERTS; x++) {
                out.add(t(expertPrefix(i, x) + "constant", TensorRole.CONSTANT_VECTOR, h));
                out.add(t(expertPrefix(i, x) + "wg.weight", TensorRole.LINEAR, 2, h));
            }
            return;
        }
        out.add(t(p + "gate.weight", TensorRole.LINEAR, e, h));
        if (m.router() == MoeConfig.RouterKind.SIGMOID_GROUP_LIMITED) {
            out.add(t(p + "gate.e_score_correction_bias", TensorRole.SCORE_BIAS, e));
        }
        String[] names = expertProjectionNames();
        for (int x = 0; x < m.numFfnExperts(); x++) {
            String ep = expertPrefix(i, x);
            out.add(t(ep + names[0], TensorRole.LINEAR, w, h));
            out.add(t(ep + names[1], TensorRole.LINEAR, w, h));
            out.add(t(ep + names[2], TensorRole.LINEAR, h, w));
        }
        if (m.sharedIntermediate() > 0) {
            String sp = p + (c.architecture() == Architecture.QWEN2_MOE ? "shared_expert." : "shared_experts.");
            mlp(sp, m.sharedIntermediate(), out);
            if (m.sharedExpertGated()) out.add(t(p + "shared_expert_gate.weight", TensorRole.LINEAR, 1, h));
        }
    }

    private static ExpectedTensor t(String name, TensorRole role, long... shape) {
        return new ExpectedTensor(name, shape, role);
    }
}
