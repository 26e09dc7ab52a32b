package io.moeserve.runtime.family.moepp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.config.ConfigReader;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.config.MoeConfig;
import io.moeserve.runtime.config.RopeConfig;
import io.moeserve.runtime.config.RopeParameters;
import io.moeserve.runtime.family.ExpectedTensor;
import io.moeserve.runtime.family.ExpertProjections;
import io.moeserve.runtime.family.ModelFamily;
import io.moeserve.runtime.family.MoeLayers;
import io.moeserve.runtime.family.TensorLayout;
import io.moeserve.runtime.family.TensorRole;
import io.moeserve.runtime.model.GateScratch;
import io.moeserve.runtime.model.MoeBlock;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.util.List;

/**
 * MoE++ ({@code MoeForCausalLM}, SkyworkAI/MoE-plus-plus remote code): beside E - 4 FFN experts, four
 * zero-computation experts (two constant, one copy, one zero; {@link ZeroComputationExperts}), computed where the
 * gate runs and never sent to expert pods; its own gate with a gating residual from layer to layer
 * ({@link MoePlusPlusGate}); the experts' input doubled as the released code does. Experts fuse gate and up into
 * {@code up_proj [2I, H]} under {@code mlp.moe.experts.experts.}; {@code head_dim} is always hidden / heads; rope
 * type "ntk" is allowed.
 */
public final class MoePlusPlus extends ModelFamily {
    /** Constant experts per MoE layer. */
    static final int CONSTANT_EXPERTS = 2;

    /** The zero expert: the last id. */
    static int zeroExpertId(int numExperts) {
        return numExperts - 1;
    }

    /** The copy expert. */
    static int copyExpertId(int numExperts) {
        return numExperts - 2;
    }

    /** The first of the two constant experts. */
    static int firstConstantExpertId(int numExperts) {
        return numExperts - 4;
    }

    @Override
    public MoeConfig readMoe(ConfigReader c) {
        JsonNode n = c.node("num_experts");
        int e;
        if (n == null) e = 32;
        else if (n.isArray() && !n.isEmpty() && n.get(0).isIntegralNumber()) e = n.get(0).asInt();
        else if (n.isIntegralNumber()) e = n.asInt();
        else throw c.error("num_experts", "must be a list of integers such as [16], got " + n);
        if (e < 5) throw c.error("num_experts", e + " leaves no FFN expert beside the four zero-computation experts");
        int interval = c.intOr("moe_expert_interval", 1);
        if (interval != 1) {
            // The released modeling code passes gate_residual to its dense MLP, which does not accept it.
            throw c.error("moe_expert_interval", "is " + interval + "; the released MoE++ code runs only with 1");
        }
        boolean mixtral = c.boolOr("moe_use_mixtral_gating", false);
        boolean noMul = c.boolOr("moe_feature_no_mul_topk", false);
        double std = c.doubleOr("moe_gate_norm_std", 1.0);
        if (!(std > 0)) throw c.error("moe_gate_norm_std", "must be positive");
        var gate = new MoePlusPlusGate.Config(c.boolOr("moe_2layer_gate", true), mixtral,
                c.boolOr("moe_use_logits_norm", false), (float) std, (mixtral || noMul) ? 1f : 2f);
        return new MoeConfig(e, e - 4, 2, c.positiveInt("intermediate_size"), 0, gate);
    }

    @Override
    public AttentionConfig readAttention(ConfigReader c, int hidden, int heads, int layers) {
        return AttentionConfig.groupedQuery(c, hidden, heads, false, new int[layers]);
    }

    @Override
    public RopeConfig readRope(ConfigReader c, AttentionConfig attention, int maxPositions) {
        return RopeParameters.read(c, 1e4).toRope(c, attention.headDim(), false, true, maxPositions);
    }

    @Override
    public String moePrefix(int layer) {
        return TensorLayout.layer(layer) + "mlp.moe.";
    }

    @Override
    public String expertPrefix(int layer, int expert) {
        return moePrefix(layer) + "experts.experts." + expert + ".";
    }

    @Override
    public ExpertProjections expertProjections() {
        return new ExpertProjections(null, "up_proj.weight", "down_proj.weight");
    }

    @Override
    public boolean acceptsFusedExperts() {
        return false;
    }

    @Override
    public void moeTensors(ModelConfig c, int layer, List<ExpectedTensor> out) {
        MoeConfig m = c.moe();
        long h = c.hiddenSize();
        long e = m.numExperts();
        String p = moePrefix(layer);
        if (gateConfig(c).twoLayerGate()) {
            out.add(new ExpectedTensor(p + "gate.wg.0.weight", new long[] {8 * e, h}, TensorRole.LINEAR));
            out.add(new ExpectedTensor(p + "gate.wg.2.weight", new long[] {e, 8 * e}, TensorRole.LINEAR));
        } else {
            out.add(new ExpectedTensor(p + "gate.wg.weight", new long[] {e, h}, TensorRole.LINEAR));
        }
        out.add(new ExpectedTensor(p + "gate.gate_map.weight", new long[] {e, e}, TensorRole.LINEAR));
        routedExpertTensors(c, layer, out);
        int first = firstConstantExpertId(m.numExperts());
        for (int x = first; x < first + CONSTANT_EXPERTS; x++) {
            out.add(new ExpectedTensor(expertPrefix(layer, x) + "constant", new long[] {h}, TensorRole.CONSTANT_VECTOR));
            out.add(new ExpectedTensor(expertPrefix(layer, x) + "wg.weight", new long[] {2, h}, TensorRole.LINEAR));
        }
    }

    @Override
    public MoeLayers moeLayers(ModelConfig c, Checkpoint ck, int maxTokens) {
        MoeConfig m = c.moe();
        MoePlusPlusGate.Config config = gateConfig(c);
        int h = c.hiddenSize();
        int e = m.numExperts();
        GateScratch scratch = new GateScratch(maxTokens, e);
        MoePlusPlusGate.Buffers[] buffers = new MoePlusPlusGate.Buffers[1]; // made with the first layer: lanes are the executor's
        return (layer, routed) -> {
            if (buffers[0] == null) buffers[0] = new MoePlusPlusGate.Buffers(maxTokens, e, routed.lanes());
            String p = moePrefix(layer);
            WeightMatrix first;
            WeightMatrix second = null;
            if (config.twoLayerGate()) {
                first = ck.matrix(p + "gate.wg.0.weight", 8L * e, h);
                second = ck.matrix(p + "gate.wg.2.weight", e, 8L * e);
            } else {
                first = ck.matrix(p + "gate.wg.weight", e, h);
            }
            WeightMatrix gateMap = ck.matrix(p + "gate.gate_map.weight", e, e);
            float[][] constants = new float[CONSTANT_EXPERTS][];
            WeightMatrix[] constantGates = new WeightMatrix[CONSTANT_EXPERTS];
            for (int x = 0; x < CONSTANT_EXPERTS; x++) {
                String ep = expertPrefix(layer, firstConstantExpertId(e) + x);
                constants[x] = ck.tensor(ep + "constant", h).toFloatArray();
                constantGates[x] = ck.matrix(ep + "wg.weight", 2, h);
            }
            // Every MoE++ layer is a MoE layer (moe_expert_interval 1), so layers after the first carry a residual.
            var gate = new MoePlusPlusGate(config, first, second, gateMap, layer > 0, scratch, buffers[0]);
            return new MoeBlock(m, h, maxTokens, gate, routed, null,
                    new ZeroComputationExperts(e, h, constants, constantGates), config.expertInputScale());
        };
    }

    private static MoePlusPlusGate.Config gateConfig(ModelConfig c) {
        return (MoePlusPlusGate.Config) c.moe().gate();
    }

    /** All four zero-computation experts beside the FFN experts, and the two-layer gate. */
    @Override
    public void writeSampleConfig(ObjectNode c, SampleShape s) {
        c.put("model_type", "MoE++");
        c.put("intermediate_size", s.expertWidth());
        ArrayNode e = c.putArray("num_experts");
        e.add(s.experts() + 4);
        c.put("moe_expert_interval", 1);
        c.put("moe_use_mixtral_gating", false);
        c.put("moe_2layer_gate", true);
        c.put("moe_use_logits_norm", false);
        c.put("moe_gate_norm_std", 1.0);
        c.put("moe_feature_no_mul_topk", false);
        c.put("rms_norm_eps", 1e-6);
        c.put("rope_theta", 1e4);
        c.putNull("rope_scaling");
        c.put("pretraining_tp", 1);
    }
}
