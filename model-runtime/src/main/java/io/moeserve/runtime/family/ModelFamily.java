package io.moeserve.runtime.family;

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
import io.moeserve.runtime.model.GateScratch;
import io.moeserve.runtime.model.MoeBlock;
import io.moeserve.runtime.model.SharedExpert;
import io.moeserve.runtime.model.SoftmaxTopKGate;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.util.Arrays;
import java.util.List;

/**
 * One model family: what this runtime knows about a Hugging Face architecture, in one place.
 *
 * <p>Design. The forward pass ({@code MoeModel}) is the same for every family: embedding; per layer RMSNorm,
 * attention (grouped-query or latent, as the config says), RMSNorm, and an FFN that is a dense MLP or a MoE block;
 * final norm and LM head. What differs by family falls into three parts, which a subclass supplies:
 * <ul>
 *   <li><b>config reading</b>: which config.json keys spell the same idea and what transformers defaults them to
 *       ({@link #readMoe}, {@link #sparseLayers}, {@link #readAttention}, {@link #readRope},
 *       {@link #defaultRmsNormEps}); the keys every family shares are read by {@code ConfigParser};</li>
 *   <li><b>tensor layout</b>: the names and shapes of the MoE block's tensors ({@link #moePrefix},
 *       {@link #expertPrefix}, {@link #expertProjections}, {@link #moeTensors}, {@link #isIgnored}); the rest of
 *       the layout is common ({@link TensorLayout});</li>
 *   <li><b>block assembly</b>: the gate, and whatever runs beside the routed experts ({@link #moeLayers}).</li>
 * </ul>
 * The defaults follow the most common Hugging Face conventions (Qwen's and OLMoE's): a {@code mlp.} prefix,
 * {@code gate_proj/up_proj/down_proj} experts, one linear gate with softmax top-k. A new family is a package under
 * {@code family/} holding one subclass (and its gate, if it has its own), plus its line in {@link Architecture};
 * the subclass also writes the family's config.json for synthetic checkpoints ({@link #writeSampleConfig}).
 *
 * <p>Families are stateless singletons; the per-model state of a family's blocks lives in what
 * {@link #moeLayers} returns.
 */
public abstract class ModelFamily {

    // ---------------------------------------------------------------- config.json

    /** rms_norm_eps when config.json has none (transformers' default for the family). */
    public double defaultRmsNormEps() {
        return 1e-6;
    }

    /** The MoE block: expert counts and widths, and the gate's settings. */
    public abstract MoeConfig readMoe(ConfigReader c);

    /** Per layer: whether its FFN is the MoE block (else a dense MLP of width intermediate_size). */
    public boolean[] sparseLayers(ConfigReader c, int layers) {
        boolean[] sparse = new boolean[layers];
        Arrays.fill(sparse, true);
        return sparse;
    }

    /** Self-attention: kind, heads, biases, q/k norms, sliding windows. */
    public abstract AttentionConfig readAttention(ConfigReader c, int hidden, int heads, int layers);

    /** The rotary embedding; by default half-split pairs over the whole head, rope_theta 10000. */
    public RopeConfig readRope(ConfigReader c, AttentionConfig attention, int maxPositions) {
        return RopeParameters.read(c, 1e4).toRope(c, attention.headDim(), false, false, maxPositions);
    }

    // ---------------------------------------------------------------- tensor layout

    /** Prefix of the MoE block of a layer. */
    public String moePrefix(int layer) {
        return TensorLayout.layer(layer) + "mlp.";
    }

    /** Prefix of routed expert e of a layer, in the hub's per-expert layout. */
    public String expertPrefix(int layer, int expert) {
        return moePrefix(layer) + "experts." + expert + ".";
    }

    /** The names of a routed expert's projections under {@link #expertPrefix}. */
    public ExpertProjections expertProjections() {
        return ExpertProjections.GATE_UP_DOWN;
    }

    /** Whether transformers v5's fused expert tensors ({@code mlp.experts.gate_up_proj}, ...) may stand in. */
    public boolean acceptsFusedExperts() {
        return true;
    }

    /** Appends the tensors of layer i's MoE block: by default the linear gate and the routed experts. */
    public void moeTensors(ModelConfig c, int layer, List<ExpectedTensor> out) {
        MoeConfig m = c.moe();
        out.add(new ExpectedTensor(moePrefix(layer) + "gate.weight", new long[] {m.numExperts(), c.hiddenSize()},
                TensorRole.LINEAR));
        routedExpertTensors(c, layer, out);
    }

    /**
     * Layer i's routed experts when the family stores them in a layout of its own (gpt-oss), indexed by expert id
     * with null for those not hosted; null (the default) for the per-expert and fused layouts {@code ExpertLoader}
     * reads itself. Fetches (validates, marks consumed) every expert's tensors when {@code validateAll}, else only
     * what the hosted ones need.
     */
    public ExpertWeights[] loadExperts(ModelConfig c, Checkpoint ck, int layer, ExpertSelection hosted, boolean validateAll) {
        return null;
    }

    /** Tensors of a checkpoint this runtime may leave unused; by default stale rotary buffers. */
    public boolean isIgnored(ModelConfig c, String tensorName) {
        return tensorName.endsWith(".rotary_emb.inv_freq");
    }

    /**
     * Whether a tensor belongs to a multi-token-prediction layer, {@code model.layers.{i}.*} with i at or beyond
     * num_hidden_layers: DeepSeek-V3 and GLM-4.5 checkpoints ship them after the main stack, and transformers
     * neither builds nor reads them.
     */
    protected static boolean isMultiTokenPredictionLayer(ModelConfig c, String name) {
        String layers = "model.layers.";
        if (!name.startsWith(layers)) return false;
        int end = name.indexOf('.', layers.length());
        try {
            return end > 0 && Integer.parseInt(name.substring(layers.length(), end)) >= c.numLayers();
        } catch (NumberFormatException e) {
            return false;
        }
    }

    /**
     * What synthetic checkpoints carry of one multi-token-prediction layer after the last (its own norms and
     * projection), so that loading proves such layers are left alone.
     */
    protected static List<ExpectedTensor> multiTokenPredictionTensors(ModelConfig c) {
        String p = TensorLayout.layer(c.numLayers());
        long h = c.hiddenSize();
        return List.of(new ExpectedTensor(p + "enorm.weight", new long[] {h}, TensorRole.NORM),
                new ExpectedTensor(p + "hnorm.weight", new long[] {h}, TensorRole.NORM),
                new ExpectedTensor(p + "eh_proj.weight", new long[] {h, 2 * h}, TensorRole.LINEAR));
    }

    /** Appends the routed FFN experts' tensors of a layer in the per-expert layout. */
    protected final void routedExpertTensors(ModelConfig c, int layer, List<ExpectedTensor> out) {
        MoeConfig m = c.moe();
        long h = c.hiddenSize();
        long w = m.expertIntermediate();
        ExpertProjections p = expertProjections();
        for (int x = 0; x < m.numFfnExperts(); x++) {
            String ep = expertPrefix(layer, x);
            if (p.fusedGateUp()) {
                out.add(new ExpectedTensor(ep + p.up(), new long[] {2 * w, h}, TensorRole.LINEAR));
            } else {
                out.add(new ExpectedTensor(ep + p.gate(), new long[] {w, h}, TensorRole.LINEAR));
                out.add(new ExpectedTensor(ep + p.up(), new long[] {w, h}, TensorRole.LINEAR));
            }
            out.add(new ExpectedTensor(ep + p.down(), new long[] {h, w}, TensorRole.LINEAR));
        }
    }

    /** Appends a shared expert's SwiGLU MLP under {@code prefix}. */
    protected static void sharedExpertTensors(ModelConfig c, String prefix, List<ExpectedTensor> out) {
        TensorLayout.mlp(prefix, c.moe().sharedIntermediate(), c.hiddenSize(), out);
    }

    // ---------------------------------------------------------------- sample checkpoints

    /**
     * The sizes a synthetic checkpoint asks a family for ({@code synthetic.SyntheticConfigs}).
     *
     * @param hidden      hidden_size
     * @param heads       num_attention_heads
     * @param expertWidth a routed expert's FFN width
     * @param experts     routed FFN experts per MoE layer
     */
    public record SampleShape(int hidden, int heads, int expertWidth, int experts) {}

    /**
     * Writes this family's own keys of a config.json for a synthetic checkpoint of this shape, in the family's
     * spelling and with the features its tests should exercise (the shared keys are already in {@code c}).
     */
    public abstract void writeSampleConfig(ObjectNode c, SampleShape shape);

    /**
     * Tensors that checkpoints of this family ship but this runtime does not use ({@link #isIgnored} lets the
     * loader leave them), for synthetic checkpoints to carry as real ones do. By default none.
     */
    public List<ExpectedTensor> unusedTensors(ModelConfig c) {
        return List.of();
    }

    // ---------------------------------------------------------------- block assembly

    /**
     * The MoE blocks of one model being loaded: called once per load, then once per MoE layer. By default a
     * {@link SoftmaxTopKGate} over {@code gate.weight}, with the config's {@link SoftmaxTopKGate.Config}.
     */
    public MoeLayers moeLayers(ModelConfig c, Checkpoint ck, int maxTokens) {
        MoeConfig m = c.moe();
        var gateConfig = (SoftmaxTopKGate.Config) m.gate();
        GateScratch scratch = new GateScratch(maxTokens, m.numExperts());
        return (layer, routed) -> new MoeBlock(m, c.hiddenSize(), maxTokens,
                new SoftmaxTopKGate(linearGate(c, ck, layer), m.topK(), gateConfig, scratch), routed);
    }

    /** Layer i's {@code gate.weight [E, H]}. */
    protected final WeightMatrix linearGate(ModelConfig c, Checkpoint ck, int layer) {
        return ck.matrix(moePrefix(layer) + "gate.weight", c.moe().numExperts(), c.hiddenSize());
    }

    /** A shared expert's SwiGLU MLP under {@code prefix}, with an optional sigmoid gate. */
    protected static SharedExpert sharedExpert(ModelConfig c, Checkpoint ck, String prefix,
                                               WeightMatrix sigmoidGate) {
        long w = c.moe().sharedIntermediate();
        long h = c.hiddenSize();
        return new SharedExpert(ck.matrix(prefix + "gate_proj.weight", w, h),
                ck.matrix(prefix + "up_proj.weight", w, h),
                ck.matrix(prefix + "down_proj.weight", h, w), sigmoidGate);
    }
}
