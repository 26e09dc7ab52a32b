package io.moeserve.runtime.model;

import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.expert.CheckpointExpertStore;
import io.moeserve.runtime.expert.ExpertExecutor;
import io.moeserve.runtime.expert.ExpertLoader;
import io.moeserve.runtime.expert.ExpertUnavailableException;
import io.moeserve.runtime.expert.LocalExpertExecutor;
import io.moeserve.runtime.expert.OffloadingExpertExecutor;
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
 * <p>Ping-pong. When the routed experts are expert pods, every MoE layer waits for a round trip. A step of several
 * sequences can then be split into micro-batches (whole sequences each, so causal attention inside a micro-batch
 * is what it was) that take turns: for each layer, each micro-batch in turn finishes its previous layer (waits for
 * its answers, adds them to its residual stream), runs this layer's attention and gate, and sends its expert call;
 * so while one micro-batch's hidden states are at the pods, the router runs the other's attention. Each
 * micro-batch has its own buffers and its own lane of the executor. Kernels give a token's row the same bits
 * whatever the batch's size (the kernels' contract), attention reads only its own sequence, and the MoE block's
 * summation order is unchanged, so the split step's logits are bit for bit the unsplit step's. A failure names the
 * step's rows whichever micro-batch met it; the other micro-batches' calls are awaited before it is thrown, so no
 * call of this step is still in flight when the next step begins.
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
    /** The whole step as one micro-batch: the unsplit schedule. */
    private final MicroBatch[] whole;
    /** Micro-batches of a split step (none when steps are never split); the first one uses {@link #buffers}. */
    private final MicroBatch[] split;
    private final int splitMinTokens;
    // Per-step scratch for the split: each row's sequence, each sequence's slot, token count and micro-batch.
    private final int[] rowSequence;
    private final int[] rowLocal;
    private final int[] sequenceSlot;
    private final int[] sequenceTokens;
    private final int[] sequenceMicroBatch;

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
                block.aliasExperts(config.moe().aliasOf(i));
                ffn[i] = block;
            } else {
                ffn[i] = loadMlp(checkpoint, p + "mlp.", config.denseIntermediate(), h);
            }
        }
        if (executor.prefetches()) {
            for (int i = 0, next; i < layers; i = next) {
                next = i + 1;
                while (next < layers && !(ffn[next] instanceof MoeBlock)) next++;
                if (next < layers && ffn[i] instanceof MoeBlock block) block.predictFor(next, (MoeBlock) ffn[next]);
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
        this.whole = new MicroBatch[] {new MicroBatch(null, buffers, null)};
        int count = executor.waitsOnOtherProcesses() ? Math.min(options.microBatches(), executor.lanes()) : 1;
        this.split = new MicroBatch[count > 1 ? count : 0];
        for (int m = 0; m < split.length; m++) {
            ForwardBuffers own = buffers;
            if (m > 0) {
                own = new ForwardBuffers(config, maxTokens);
                own.skipper = new ExpertSkipper(options.skipping(), h, maxTokens, config.moe().topK());
            }
            split[m] = new MicroBatch(new StepBatch(maxTokens), own, new int[maxTokens]);
        }
        this.splitMinTokens = Math.max(2, options.microBatchMinTokens());
        this.rowSequence = new int[split.length == 0 ? 0 : maxTokens];
        this.rowLocal = new int[rowSequence.length];
        this.sequenceSlot = new int[rowSequence.length];
        this.sequenceTokens = new int[rowSequence.length];
        this.sequenceMicroBatch = new int[rowSequence.length];
    }

    /** Loads config.json (+ generation_config.json) and the safetensors of a checkpoint directory. */
    public static MoeModel load(Path dir, ModelOptions options) {
        ModelConfig config = ConfigParser.load(dir);
        Checkpoint checkpoint = Checkpoint.open(dir);
        checkpoint.useInt8Activations(options.int8Activations());
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

    /** How many micro-batches a step of several sequences is split into (1: never split). */
    public int microBatches() {
        return Math.max(1, split.length);
    }

    /**
     * A KV cache for this model with room for {@code budgetTokens} positions across {@code maxSequences}, storing the
     * options' dtype.
     */
    public KvCache newKvCache(int budgetTokens, int maxSequences) {
        return KvCache.forModel(config, budgetTokens, maxSequences, maxContext(), options.kvCacheDtype());
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
        int v = config.vocabSize();
        for (int t = 0; t < n; t++) {
            int token = batch.tokens[t];
            int pos = batch.positions[t];
            if (token < 0 || token >= v) throw new IllegalArgumentException("token id " + token + " is outside the vocabulary [0, " + v + ")");
            if (pos < 0 || pos >= maxContext()) throw new IllegalArgumentException("position " + pos + " is beyond the context limit "
                    + maxContext());
            if (!cache.reserve(batch.slots[t], pos + 1)) throw new KvCacheFullException(batch.slots[t], pos + 1);
        }
        int count = splitInto(batch);
        MicroBatch[] parts = split;
        if (count == 1) {
            parts = whole;
            parts[0].batch = batch;
        }
        for (int m = 0; m < count; m++) {
            MicroBatch mb = parts[m];
            for (int i = 0; i < mb.batch.size; i++) embed(mb.batch.tokens[i], mb.buffers.hidden, i * config.hiddenSize());
        }
        // Each micro-batch skips by its own rows' thresholds (a request's own, or the model's).
        for (int m = 0; m < count; m++) parts[m].buffers.skipper.prepare(parts[m].batch);
        // The pool's workers spin through the step's serial parts instead of parking between its products.
        compute.parallel().stayAwake(true);
        try {
            layers(parts, count, cache, observer);
        } catch (RuntimeException e) {
            throw awaitAll(parts, count, e);
        } finally {
            compute.parallel().stayAwake(false);
        }
        for (int t = 0; t < n; t++) {
            int slot = batch.slots[t];
            cache.setLength(slot, Math.max(cache.length(slot), batch.positions[t] + 1));
        }
        logits(batch, parts, count, logits);
    }

    /**
     * The schedule: every micro-batch through every layer, a layer's FFN finished only when the micro-batch comes
     * round again, so its expert call is in flight while the others run. With one micro-batch this is the plain
     * order, layer after layer.
     */
    private void layers(MicroBatch[] parts, int count, KvCache cache, RoutingObserver observer) {
        int last = config.numLayers() - 1;
        for (int l = 0; l <= last; l++) {
            for (int m = 0; m < count; m++) {
                if (l > 0) finishLayer(l - 1, parts[m]);
                beginLayer(l, parts[m], cache, observer, m);
            }
        }
        for (int m = 0; m < count; m++) finishLayer(last, parts[m]);
    }

    /** A token's way through layer l up to its FFN: norm, attention, residual add, norm, the FFN begun. */
    private void beginLayer(int l, MicroBatch mb, KvCache cache, RoutingObserver observer, int lane) {
        StepBatch batch = mb.batch;
        ForwardBuffers b = mb.buffers;
        int n = batch.size;
        int h = config.hiddenSize();
        for (int t = 0; t < n; t++) VectorOps.rmsNorm(b.hidden, t * h, inputNorms[l], config.rmsNormEps(), b.normed, t * h, h);
        attention[l].forward(l, batch, cache, b, compute);
        VectorOps.add(b.projected, 0, b.hidden, 0, n * h);
        for (int t = 0; t < n; t++) VectorOps.rmsNorm(b.hidden, t * h, postNorms[l], config.rmsNormEps(), b.normed, t * h, h);
        ffn[l].begin(l, batch, b, compute, observer, mb.stepRows, lane);
        mb.lane = lane;
        mb.pendingLayer = l;
    }

    /** The rest of layer l: the FFN's output (the experts' answers awaited) added to the residual stream. */
    private void finishLayer(int l, MicroBatch mb) {
        mb.pendingLayer = -1;
        ffn[l].finish(l, mb.batch, mb.buffers, compute, mb.lane);
        VectorOps.add(mb.buffers.projected, 0, mb.buffers.hidden, 0, mb.batch.size * config.hiddenSize());
    }

    /** The logits of the rows that asked for them, in the step's order, whichever micro-batch holds each row. */
    private void logits(StepBatch batch, MicroBatch[] parts, int count, float[] logits) {
        int rows = batch.logitCount;
        if (rows == 0) return;
        int h = config.hiddenSize();
        if (logits.length < rows * config.vocabSize()) throw new IllegalArgumentException("logits buffer holds fewer than " + rows + " rows");
        for (int r = 0; r < rows; r++) {
            int row = batch.logitRows[r];
            MicroBatch mb = count == 1 ? parts[0] : parts[sequenceMicroBatch[rowSequence[row]]];
            int local = count == 1 ? row : rowLocal[row];
            VectorOps.rmsNorm(mb.buffers.hidden, local * h, finalNorm, config.rmsNormEps(), buffers.normed, r * h, h);
        }
        compute.kernels().matmul(lmHead, buffers.normed, 0, logits, 0, rows);
    }

    /**
     * Splits the step into micro-batches when it is split at all: its sequences, in order of first appearance, go in
     * contiguous runs to {@code split.length} micro-batches (fewer when there are fewer sequences) of about equal
     * token counts; each micro-batch keeps its rows in step order. Returns how many micro-batches the step runs as.
     */
    private int splitInto(StepBatch batch) {
        int n = batch.size;
        if (split.length == 0 || n < splitMinTokens) return 1;
        int sequences = 0;
        for (int t = 0; t < n; t++) {
            int slot = batch.slots[t];
            int s = sequences - 1;
            if (s < 0 || sequenceSlot[s] != slot) { // a sequence's rows are usually adjacent: look further only if not
                s = 0;
                while (s < sequences && sequenceSlot[s] != slot) s++;
                if (s == sequences) {
                    sequenceSlot[sequences] = slot;
                    sequenceTokens[sequences++] = 0;
                }
            }
            sequenceTokens[s]++;
            rowSequence[t] = s;
        }
        if (sequences < 2) return 1;
        int count = Math.min(split.length, sequences);
        // Micro-batch m closes once it holds its share of the tokens, or when every later one needs a sequence left.
        int m = 0;
        long tokens = 0;
        for (int s = 0; s < sequences; s++) {
            sequenceMicroBatch[s] = m;
            tokens += sequenceTokens[s];
            if (m < count - 1 && (tokens * count >= (long) n * (m + 1) || sequences - s - 1 == count - m - 1)) m++;
        }
        for (int i = 0; i < count; i++) split[i].batch.clearFor(batch);
        for (int t = 0; t < n; t++) {
            MicroBatch mb = split[sequenceMicroBatch[rowSequence[t]]];
            int local = mb.batch.add(batch.tokens[t], batch.slots[t], batch.positions[t], false, batch.skipThreshold(t));
            mb.stepRows[local] = t;
            rowLocal[t] = local;
        }
        return count;
    }

    /**
     * After a micro-batch's layer failed: waits for the calls the others have in flight (a lane must be empty before
     * the next step uses it), and returns the failure to throw, naming every row any micro-batch's call failed for.
     */
    private RuntimeException awaitAll(MicroBatch[] parts, int count, RuntimeException failure) {
        RuntimeException result = failure;
        for (int m = 0; m < count; m++) {
            MicroBatch mb = parts[m];
            if (mb.pendingLayer < 0) continue;
            int l = mb.pendingLayer;
            mb.pendingLayer = -1;
            try {
                ffn[l].finish(l, mb.batch, mb.buffers, compute, mb.lane);
            } catch (RuntimeException e) {
                if (result instanceof ExpertUnavailableException a && e instanceof ExpertUnavailableException b) {
                    result = merged(a, b);
                } else {
                    result.addSuppressed(e);
                }
            }
        }
        return result;
    }

    private static ExpertUnavailableException merged(ExpertUnavailableException a, ExpertUnavailableException b) {
        int[] ra = a.rows();
        int[] rb = b.rows();
        int[] rows = java.util.Arrays.copyOf(ra, ra.length + rb.length);
        System.arraycopy(rb, 0, rows, ra.length, rb.length);
        int[] groups = java.util.stream.IntStream.concat(java.util.Arrays.stream(a.groups()), java.util.Arrays.stream(b.groups()))
                .distinct().sorted().toArray();
        ExpertUnavailableException m = new ExpertUnavailableException(a.layer(), a.group(), rows, groups,
                a.getMessage() + "; " + b.getMessage(), a.getCause());
        m.addSuppressed(b);
        return m;
    }

    private void embed(int token, float[] out, int off) {
        int h = config.hiddenSize();
        for (int i = 0; i < h; i++) out[off + i] = embedding.get(token, i);
    }

    @Override
    public void close() {
        // Its prefetch worker is this model's; other executors (expert pods' clients) belong to their callers.
        if (executor instanceof OffloadingExpertExecutor offloading) offloading.close();
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

    /** Rows of a step that run together: the step itself, or one micro-batch of it with its own buffers and lane. */
    private static final class MicroBatch {
        StepBatch batch;
        final ForwardBuffers buffers;
        /** Step row of each of the batch's rows; null when the batch is the step. */
        final int[] stepRows;
        int lane;
        /** The layer whose FFN was begun and not finished, or -1. */
        int pendingLayer = -1;

        MicroBatch(StepBatch batch, ForwardBuffers buffers, int[] stepRows) {
            this.batch = batch;
            this.buffers = buffers;
            this.stepRows = stepRows;
        }
    }

    private static DenseMlp loadMlp(Checkpoint ck, String p, int width, int h) {
        return new DenseMlp(matrix(ck, p + "gate_proj.weight", width, h), matrix(ck, p + "up_proj.weight", width, h),
                matrix(ck, p + "down_proj.weight", h, width));
    }
}
