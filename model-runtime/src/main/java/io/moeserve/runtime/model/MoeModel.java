package io.moeserve.runtime.model;

import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.expert.CheckpointExpertStore;
import io.moeserve.runtime.expert.ExpertExecutor;
import io.moeserve.runtime.expert.ExpertLoader;
import io.moeserve.runtime.expert.LocalExpertExecutor;
import io.moeserve.runtime.family.ModelFamily;
import io.moeserve.runtime.family.MoeLayers;
import io.moeserve.runtime.family.TensorLayout;
import io.moeserve.runtime.kernel.VectorOps;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Pattern;

/**
 * A Mixture-of-Experts causal language model loaded from a Hugging Face checkpoint, ready to run forward steps.
 *
 * <p>Design. Loading maps the checkpoint and builds, per layer, an {@link Attention} (grouped-query or latent) and
 * a {@link FeedForward}: a dense MLP, or a {@link MoeBlock} that the model's family assembles
 * ({@link ModelFamily#moeLayers}); all hold views of the mapped weights, and norms and biases, being tiny, are
 * widened to float arrays. Every tensor name comes from {@link TensorLayout} and the family, and after loading the
 * checkpoint must have no tensor left unused. A forward step takes any mix of tokens from any number
 * of sequences ({@link StepBatch}): the same code runs one-pass prefill, batched decode and chunked prefill
 * mixed with decode. Activations are float32 in buffers allocated once for the largest step; nothing on the
 * per-token path allocates. Routed experts go through an {@link ExpertExecutor}, so that they can run here or in
 * expert pods without the model code knowing.
 *
 * <p>One step at a time: {@link #forward} is not reentrant.
 */
public final class MoeModel implements AutoCloseable {
    private final ModelConfig config;
    private final Checkpoint checkpoint;
    private final ModelOptions options;
    private final WeightMatrix embedding;
    private final WeightMatrix lmHead;
    private final float[] finalNorm;
    private final float[][] inputNorms;
    private final float[][] postNorms;
    private final Attention[] attention;
    private final FeedForward[] ffn;
    private final CheckpointExpertStore experts;
    private final ExpertExecutor executor;
    private final ForwardBuffers buffers;
    private final Compute compute;

    private MoeModel(ModelConfig config, Checkpoint checkpoint, ModelOptions options) {
        this.config = config;
        this.checkpoint = checkpoint;
        this.options = options;
        int layers = config.numLayers();
        int h = config.hiddenSize();
        int v = config.vocabSize();
        TensorLayout layout = new TensorLayout(config);
        int maxTokens = options.maxStepTokens();
        MoeLayers moeLayers = config.architecture().family().moeLayers(config, checkpoint, maxTokens);
        this.embedding = checkpoint.tensor(TensorLayout.embedTokens(), v, h).asMatrix();
        this.lmHead = config.tieWordEmbeddings() ? embedding : matrix(checkpoint, TensorLayout.lmHead(), v, h);
        this.finalNorm = vector(checkpoint, TensorLayout.finalNorm(), h);
        this.inputNorms = new float[layers][];
        this.postNorms = new float[layers][];
        this.attention = new Attention[layers];
        this.ffn = new FeedForward[layers];
        this.experts = ExpertLoader.loadForModel(config, checkpoint, options.hostedExperts());
        this.executor = options.executor() == null
                ? new LocalExpertExecutor(experts, options.kernels(), maxTokens, config.moe().topK())
                : options.executor().apply(experts);
        for (int i = 0; i < layers; i++) {
            String p = TensorLayout.layer(i);
            inputNorms[i] = vector(checkpoint, p + "input_layernorm.weight", h);
            postNorms[i] = vector(checkpoint, p + "post_attention_layernorm.weight", h);
            attention[i] = loadAttention(config, checkpoint, i);
            if (config.isSparse(i)) {
                MoeBlock block = moeLayers.block(i, executor);
                int[] pruned = options.prunedExperts().forLayer(i, config.moe().numExperts(), config.moe().topK());
                if (pruned != null) block.pruneExperts(i, pruned);
                ffn[i] = block;
            } else {
                ffn[i] = loadMlp(checkpoint, p + "mlp.", config.denseIntermediate(), h);
            }
        }
        for (int l : options.prunedExperts().namedLayers()) {
            if (l >= layers || !config.isSparse(l)) throw new IllegalArgumentException("pruned experts name layer " + l + ", which is no MoE layer");
        }
        List<Pattern> ignored = checkpoint.unconsumed().stream().filter(layout::isIgnored)
                .map(n -> Pattern.compile(Pattern.quote(n))).toList();
        checkpoint.requireAllConsumed(ignored, config.architecture().hfClassName());
        int maxContext = Math.min(options.maxContext(), config.maxPositionEmbeddings());
        this.buffers = new ForwardBuffers(config, maxTokens);
        this.buffers.skipper = new ExpertSkipper(options.skipping(), h, maxTokens, config.moe().topK());
        this.compute = new Compute(options.kernels(), options.parallel(), new RopeTable(config.rope(), maxContext),
                new AttentionCore(options.parallel(), maxContext));
    }

    /** Loads config.json (+ generation_config.json) and the safetensors of a checkpoint directory. */
    public static MoeModel load(Path dir, ModelOptions options) {
        ModelConfig config = ConfigParser.load(dir);
        Checkpoint checkpoint = Checkpoint.open(dir);
        try {
            return new MoeModel(config, checkpoint, options);
        } catch (RuntimeException e) {
            checkpoint.close();
            throw e;
        }
    }

    public ModelConfig config() {
        return config;
    }

    public Checkpoint checkpoint() {
        return checkpoint;
    }

    public ModelOptions options() {
        return options;
    }

    /** The routed experts loaded into this process (possibly none). */
    public CheckpointExpertStore experts() {
        return experts;
    }

    /** Longest sequence this model instance can run (RoPE table and attention scratch). */
    public int maxContext() {
        return compute.rope().maxPositions();
    }

    public int maxStepTokens() {
        return buffers.maxTokens;
    }

    /** A KV cache for this model with room for {@code budgetTokens} positions across {@code maxSequences}. */
    public KvCache newKvCache(int budgetTokens, int maxSequences) {
        return KvCache.forModel(config, budgetTokens, maxSequences, maxContext());
    }

    /**
     * Runs one step: embeds the batch's tokens, runs every layer (writing their keys and values into the cache),
     * and writes the logits of the tokens that asked for them, row after row, into {@code logits}
     * ({@code batch.logitCount() × vocab_size} floats).
     *
     * @throws KvCacheFullException when a sequence's next block cannot be taken from the pool
     */
    public void forward(StepBatch batch, KvCache cache, float[] logits, RoutingObserver observer) {
        int n = batch.size;
        if (n == 0) return;
        if (n > buffers.maxTokens) throw new IllegalArgumentException("step of " + n + " tokens exceeds " + buffers.maxTokens);
        int h = config.hiddenSize();
        int v = config.vocabSize();
        for (int t = 0; t < n; t++) {
            int token = batch.tokens[t];
            int pos = batch.positions[t];
            if (token < 0 || token >= v) throw new IllegalArgumentException("token id " + token + " is outside the vocabulary [0, " + v + ")");
            if (pos < 0 || pos >= maxContext()) throw new IllegalArgumentException("position " + pos + " is beyond the context limit "
                    + maxContext());
            if (!cache.reserve(batch.slots[t], pos + 1)) throw new KvCacheFullException(batch.slots[t], pos + 1);
            embed(token, buffers.hidden, t * h);
        }
        buffers.skipper.prepare(batch);
        // The pool's workers spin through the step's serial parts instead of parking between its products.
        compute.parallel().stayAwake(true);
        try {
            layers(batch, cache, logits, observer);
        } finally {
            compute.parallel().stayAwake(false);
        }
    }

    private void layers(StepBatch batch, KvCache cache, float[] logits, RoutingObserver observer) {
        int n = batch.size;
        int h = config.hiddenSize();
        int v = config.vocabSize();
        ForwardBuffers b = buffers;
        for (int l = 0; l < config.numLayers(); l++) {
            for (int t = 0; t < n; t++) VectorOps.rmsNorm(b.hidden, t * h, inputNorms[l], config.rmsNormEps(), b.normed, t * h, h);
            attention[l].forward(l, batch, cache, b, compute);
            VectorOps.add(b.projected, 0, b.hidden, 0, n * h);
            for (int t = 0; t < n; t++) VectorOps.rmsNorm(b.hidden, t * h, postNorms[l], config.rmsNormEps(), b.normed, t * h, h);
            ffn[l].forward(l, batch, b, compute, observer);
            VectorOps.add(b.projected, 0, b.hidden, 0, n * h);
        }
        for (int t = 0; t < n; t++) {
            int slot = batch.slots[t];
            cache.setLength(slot, Math.max(cache.length(slot), batch.positions[t] + 1));
        }
        int rows = batch.logitCount;
        if (rows == 0) return;
        if (logits.length < rows * v) throw new IllegalArgumentException("logits buffer holds fewer than " + rows + " rows");
        for (int r = 0; r < rows; r++) {
            VectorOps.rmsNorm(b.hidden, batch.logitRows[r] * h, finalNorm, config.rmsNormEps(), b.normed, r * h, h);
        }
        compute.kernels().matmul(lmHead, b.normed, 0, logits, 0, rows);
    }

    private void embed(int token, float[] out, int off) {
        int h = config.hiddenSize();
        for (int i = 0; i < h; i++) out[off + i] = embedding.get(token, i);
    }

    @Override
    public void close() {
        checkpoint.close();
    }

    // ---------------------------------------------------------------- loading

    private static WeightMatrix matrix(Checkpoint ck, String name, long rows, long cols) {
        return ck.matrix(name, rows, cols);
    }

    private static float[] vector(Checkpoint ck, String name, long n) {
        return ck.tensor(name, n).toFloatArray();
    }

    private static float[] optionalVector(Checkpoint ck, String name, long n, boolean present) {
        return present ? vector(ck, name, n) : null;
    }

    private static Attention loadAttention(ModelConfig config, Checkpoint ck, int i) {
        AttentionConfig a = config.attention();
        String p = TensorLayout.layer(i) + "self_attn.";
        int h = config.hiddenSize();
        if (a.kind() == AttentionConfig.Kind.GROUPED_QUERY) {
            int q = a.numHeads() * a.headDim();
            int kv = a.numKvHeads() * a.headDim();
            float[] qNorm = null;
            float[] kNorm = null;
            switch (a.qkNorm()) {
                case PER_HEAD -> {
                    qNorm = vector(ck, p + "q_norm.weight", a.headDim());
                    kNorm = vector(ck, p + "k_norm.weight", a.headDim());
                }
                case WHOLE_PROJECTION -> {
                    qNorm = vector(ck, p + "q_norm.weight", q);
                    kNorm = vector(ck, p + "k_norm.weight", kv);
                }
                case NONE -> { }
            }
            return new GroupedQueryAttention(a, matrix(ck, p + "q_proj.weight", q, h), matrix(ck, p + "k_proj.weight", kv, h),
                    matrix(ck, p + "v_proj.weight", kv, h), matrix(ck, p + "o_proj.weight", h, q),
                    optionalVector(ck, p + "q_proj.bias", q, a.qkvBias()), optionalVector(ck, p + "k_proj.bias", kv, a.qkvBias()),
                    optionalVector(ck, p + "v_proj.bias", kv, a.qkvBias()), optionalVector(ck, p + "o_proj.bias", h, a.outputBias()),
                    qNorm, kNorm, config.rmsNormEps(), a.slidingWindow()[i],
                    optionalVector(ck, p + "sinks", a.numHeads(), a.sinks()));
        }
        AttentionConfig.MlaDims m = a.mla();
        int heads = a.numHeads();
        int qWidth = heads * m.qkHeadDim();
        boolean bias = m.projectionBias();
        WeightMatrix wq = null, wqa = null, wqb = null;
        float[] bqa = null, qaNorm = null;
        if (m.qLoraRank() == 0) {
            wq = matrix(ck, p + "q_proj.weight", qWidth, h);
        } else {
            wqa = matrix(ck, p + "q_a_proj.weight", m.qLoraRank(), h);
            bqa = optionalVector(ck, p + "q_a_proj.bias", m.qLoraRank(), bias);
            qaNorm = vector(ck, p + "q_a_layernorm.weight", m.qLoraRank());
            wqb = matrix(ck, p + "q_b_proj.weight", qWidth, m.qLoraRank());
        }
        int kva = m.kvLoraRank() + m.qkRopeHeadDim();
        return new LatentAttention(a, wq, wqa, bqa, qaNorm, wqb,
                matrix(ck, p + "kv_a_proj_with_mqa.weight", kva, h), optionalVector(ck, p + "kv_a_proj_with_mqa.bias", kva, bias),
                vector(ck, p + "kv_a_layernorm.weight", m.kvLoraRank()),
                matrix(ck, p + "kv_b_proj.weight", (long) heads * (m.qkNopeHeadDim() + m.vHeadDim()), m.kvLoraRank()),
                matrix(ck, p + "o_proj.weight", h, (long) heads * m.vHeadDim()), optionalVector(ck, p + "o_proj.bias", h, bias));
    }

    private static DenseMlp loadMlp(Checkpoint ck, String p, int width, int h) {
        return new DenseMlp(matrix(ck, p + "gate_proj.weight", width, h), matrix(ck, p + "up_proj.weight", width, h),
                matrix(ck, p + "down_proj.weight", h, width));
    }
}
