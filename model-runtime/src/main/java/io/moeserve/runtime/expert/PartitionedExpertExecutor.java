package io.moeserve.runtime.expert;

import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.kernel.VectorOps;
import java.util.Arrays;
import java.util.List;

/**
 * Runs routed experts that are spread over several expert groups (sets of experts, each hosted by its own pods):
 * splits a layer call into one {@link ExpertBatch} per group, has a {@link ExpertBatchDispatcher} compute them, and
 * adds the groups' per-token partial sums into the output.
 *
 * <p>Design. The split is a single pass over the step's (token, expert) pairs: a pair goes to the group that hosts
 * its expert. When several groups host an expert (a hot expert replicated, as EPLB places redundant experts), the
 * whole expert goes to one of them for this call, never its tokens split: an expert's weights are streamed once
 * per call whatever its token count, so splitting a small batch in two costs a second pass over the weights. Which
 * group is chosen balances the call: each group's load is estimated as Σ over its experts in the call of
 * {@link #estimatedCost}, which follows the kernels' measured step function of the token count rather than the
 * count itself; the experts only one group hosts are counted first, then the replicated ones
 * go, most tokens first, each to the candidate with the least load so far (longest processing time first, lowest
 * index on ties), so the choice is deterministic and the layer, which waits for its slowest group, waits as
 * little as the replicas allow. A token appears in
 * a group's batch once, with all of its pairs for that group, so each group answers one vector per token. Partial
 * sums are added in group order. For top-2 routing the result is bit-identical to computing every expert in one
 * process whatever the assignment (IEEE addition is commutative, and a pod's sum over its experts is the same sum
 * the local executor forms); for top-k above 2 it can differ in the last bits, as any change of summation order does.
 *
 * <p>Every (MoE layer, routed FFN expert) must be hosted by some group; that is checked when the executor is
 * built, so a hole in the expert map is a startup error, not a failure at the first request that needs it.
 *
 * <p>Degraded mode. By default a group that cannot compute its batch fails the call
 * ({@link ExpertUnavailableException}, and the sequences that needed it end). Built with an
 * {@link ExpertMaskListener}, the executor instead masks that group's (token, expert) pairs and renormalises each
 * affected token's remaining gate weights, as Hivemind's RemoteMixtureOfExperts does (a softmax over the logits
 * of the experts that answered). Hivemind's weights always sum to 1; here the gate's weights need not (DeepSeek's
 * routed_scaling_factor, Qwen2-MoE without norm_topk_prob, sigmoid gates), so the rule is the one that is
 * Hivemind's when they do and keeps the layer's scale when they don't: the kept weights are scaled to sum to what
 * the token's chosen weights summed to, w'_j = w_j · Σ_all w / Σ_kept w. An expert's output is linear in its
 * weight, so this needs no second call: a token's sum over the groups that answered is scaled by that factor. A
 * token whose every expert was masked gets zero routed output (its hidden state goes on through the residual
 * path and any shared experts), as Hivemind's allow_zero_outputs; failing it instead would fail most requests as
 * soon as a group is down, which is what the mode is chosen to avoid. Each masked pair is reported to the
 * listener. Scratch for this is allocated once; the path runs only when a group failed.
 *
 * <p>Lanes. A call is {@link #begin} (split, send) and {@link #finish} (wait, add, mask), so the caller computes
 * while the pods do; each of the dispatcher's lanes has its own group batches and failure state, so micro-batches
 * of one step can each have a call in flight. Failures and masked pairs name the step's rows: a micro-batch's rows
 * are mapped back through the {@code stepRows} its begin was given, so the right sequences fail or are told.
 */
public final class PartitionedExpertExecutor implements ExpertExecutor {
    private final ExpertBatchDispatcher dispatcher;
    /** One per lane of the dispatcher: the calls that can be in flight at once. */
    private final Lane[] lanes;
    /** candidates[layer][expert] = groups hosting it; null for dense layers. */
    private final int[][][] candidates;
    private final int hidden;
    /** Whether some expert of the layer has more than one candidate group. */
    private final boolean[] replicated;
    // Per-call scratch for the assignment of replicated experts.
    private final int[] tokensPerExpert;
    private final int[] groupOfExpert;
    private final int[] byTokens;
    private final long[] load;
    /** Null: a failed group fails the call; else degraded mode, told of every masked pair. */
    private final ExpertMaskListener masking;
    // Degraded-mode scratch: per row the kept weight and masked pairs.
    private final float[] keptWeight;
    private final int[] maskedPairs;

    /**
     * @param groups     what each group hosts, in group order
     * @param groupNames names for error messages
     * @param maxTokens  most tokens per layer call
     */
    public PartitionedExpertExecutor(ModelConfig config, List<? extends ExpertSelection> groups, List<String> groupNames,
                                     ExpertBatchDispatcher dispatcher, int maxTokens) {
        this(config, groups, groupNames, dispatcher, maxTokens, null);
    }

    /**
     * @param masking null to fail a call that some group cannot compute; else degraded mode (masking and
     *                renormalising, the design note above), telling it of every masked pair
     */
    public PartitionedExpertExecutor(ModelConfig config, List<? extends ExpertSelection> groups, List<String> groupNames,
                                     ExpertBatchDispatcher dispatcher, int maxTokens, ExpertMaskListener masking) {
        if (groups.isEmpty()) throw new IllegalArgumentException("no expert groups configured");
        if (groupNames.size() != groups.size()) throw new IllegalArgumentException("one name per expert group");
        this.dispatcher = dispatcher;
        this.hidden = config.hiddenSize();
        int k = config.moe().topK();
        this.lanes = new Lane[Math.max(1, dispatcher.lanes())];
        for (int i = 0; i < lanes.length; i++) lanes[i] = new Lane(groups.size(), maxTokens, k, hidden);
        int ffn = config.moe().numFfnExperts();
        this.candidates = new int[config.numLayers()][][];
        this.replicated = new boolean[config.numLayers()];
        this.tokensPerExpert = new int[ffn];
        this.groupOfExpert = new int[ffn];
        this.byTokens = new int[ffn];
        this.load = new long[groups.size()];
        this.masking = masking;
        this.keptWeight = new float[masking == null ? 0 : maxTokens];
        this.maskedPairs = new int[masking == null ? 0 : maxTokens];
        for (int l = 0; l < config.numLayers(); l++) {
            if (!config.isSparse(l)) continue;
            candidates[l] = new int[ffn][];
            for (int e = 0; e < ffn; e++) {
                int[] c = new int[groups.size()];
                int n = 0;
                for (int g = 0; g < groups.size(); g++) if (groups.get(g).hosts(l, e)) c[n++] = g;
                if (n == 0) {
                    throw new IllegalArgumentException("expert " + e + " of layer " + l + " is hosted by no expert group (groups: "
                            + String.join(", ", groupNames) + ")");
                }
                candidates[l][e] = Arrays.copyOf(c, n);
                if (n > 1) replicated[l] = true;
            }
        }
    }

    @Override
    public void computeExperts(long step, int layer, int n, int k, float[] x, int[] experts, float[] weights, float[] out) {
        begin(step, layer, n, k, x, experts, weights, out, null, 0);
        finish(0);
    }

    /** Splits the call into the lane's group batches and has the dispatcher send them. */
    @Override
    public void begin(long step, int layer, int n, int k, float[] x, int[] experts, float[] weights, float[] out,
                      int[] stepRows, int lane) {
        Lane c = lanes[lane];
        if (c.inFlight) throw new IllegalStateException("lane " + lane + " already has a call in flight");
        ExpertBatch[] batches = c.batches;
        for (ExpertBatch b : batches) b.clear();
        int[][] layerCandidates = candidates[layer];
        if (replicated[layer]) assignReplicated(layerCandidates, n * k, experts);
        for (int t = 0; t < n; t++) {
            for (int j = 0; j < k; j++) {
                int e = experts[t * k + j];
                if (e < 0) continue;
                int[] cand = layerCandidates[e];
                ExpertBatch b = batches[cand.length == 1 ? cand[0] : groupOfExpert[e]];
                int i = b.lastTokenIfRow(t);
                if (i < 0) i = b.addToken(t, x, t * hidden);
                b.addPair(i, e, weights[t * k + j]);
            }
        }
        c.layer = layer;
        c.n = n;
        c.k = k;
        c.experts = experts;
        c.weights = weights;
        c.out = out;
        c.stepRows = stepRows;
        c.failure = null;
        try {
            dispatcher.begin(step, layer, batches, lane);
        } catch (ExpertUnavailableException e) {
            c.failure = e; // a dispatcher that computes in begin failed there: reported by finish, as any failure
        }
        c.inFlight = true;
    }

    /** Waits for the lane's group answers and adds them into the call's output, in group order. */
    @Override
    public void finish(int lane) {
        Lane c = lanes[lane];
        if (!c.inFlight) throw new IllegalStateException("lane " + lane + " has no call in flight");
        c.inFlight = false;
        ExpertUnavailableException failure = c.failure;
        c.failure = null;
        if (failure == null) {
            try {
                dispatcher.await(lane);
            } catch (ExpertUnavailableException e) {
                failure = e;
            }
        }
        Arrays.fill(c.failed, false);
        if (failure != null) {
            int[] groups = failure.groups();
            if (masking == null || groups.length == 0) throw inStepRows(failure, c.stepRows);
            for (int g : groups) c.failed[g] = true;
        }
        int n = c.n;
        float[] out = c.out;
        Arrays.fill(out, 0, n * hidden, 0f);
        boolean masked = false;
        for (int g = 0; g < c.batches.length; g++) {
            ExpertBatch b = c.batches[g];
            if (c.failed[g]) {
                masked |= b.size() > 0;
                continue;
            }
            for (int i = 0; i < b.size(); i++) VectorOps.add(b.out, i * hidden, out, b.rows[i] * hidden, hidden);
        }
        if (masked) renormalise(c);
    }

    @Override
    public int lanes() {
        return lanes.length;
    }

    /** The failure with its rows as the step's rows (a micro-batch's rows are its own until here). */
    private static ExpertUnavailableException inStepRows(ExpertUnavailableException e, int[] stepRows) {
        if (stepRows == null) return e;
        int[] rows = e.rows();
        for (int i = 0; i < rows.length; i++) rows[i] = stepRows[rows[i]];
        ExpertUnavailableException mapped = new ExpertUnavailableException(e.layer(), e.group(), rows, e.groups(), e.getMessage(),
                e.getCause());
        mapped.setStackTrace(e.getStackTrace());
        return mapped;
    }

    /** Degraded mode, after a call some group failed: scales each affected token's sum, reports the masked pairs. */
    private void renormalise(Lane c) {
        int n = c.n;
        int k = c.k;
        float[] weights = c.weights;
        int[] experts = c.experts;
        float[] out = c.out;
        ExpertBatch[] batches = c.batches;
        Arrays.fill(keptWeight, 0, n, 0f);
        Arrays.fill(maskedPairs, 0, n, 0);
        for (int g = 0; g < batches.length; g++) {
            ExpertBatch b = batches[g];
            int bk = b.k();
            for (int i = 0; i < b.size(); i++) {
                int row = b.rows[i];
                int pairs = 0;
                float w = 0f;
                for (int j = 0; j < bk; j++) {
                    if (b.experts[i * bk + j] < 0) continue;
                    pairs++;
                    w += b.weights[i * bk + j];
                }
                if (c.failed[g]) maskedPairs[row] += pairs;
                else keptWeight[row] += w;
            }
        }
        for (int t = 0; t < n; t++) {
            if (maskedPairs[t] == 0 || keptWeight[t] <= 0f) continue; // untouched, or nothing kept: zero stays
            float chosen = 0f;
            for (int j = 0; j < k; j++) if (experts[t * k + j] >= 0) chosen += weights[t * k + j];
            float scale = chosen / keptWeight[t];
            for (int i = t * hidden, end = i + hidden; i < end; i++) out[i] *= scale;
        }
        for (int g = 0; g < batches.length; g++) {
            if (!c.failed[g]) continue;
            ExpertBatch b = batches[g];
            int bk = b.k();
            for (int i = 0; i < b.size(); i++) {
                int pairs = 0;
                for (int j = 0; j < bk; j++) if (b.experts[i * bk + j] >= 0) pairs++;
                masking.onMasked(c.layer, g, c.stepRows == null ? b.rows[i] : c.stepRows[b.rows[i]], pairs);
            }
        }
    }

    /** The groups are expert pods, reached over the network. */
    @Override
    public boolean waitsOnOtherProcesses() {
        return true;
    }

    /** Chooses {@link #groupOfExpert} for every replicated expert of the call (the design note above). */
    private void assignReplicated(int[][] layerCandidates, int slots, int[] experts) {
        Arrays.fill(tokensPerExpert, 0);
        for (int i = 0; i < slots; i++) if (experts[i] >= 0) tokensPerExpert[experts[i]]++;
        Arrays.fill(load, 0);
        int movable = 0;
        for (int e = 0; e < tokensPerExpert.length; e++) {
            int tokens = tokensPerExpert[e];
            if (tokens == 0) continue;
            int[] c = layerCandidates[e];
            if (c.length == 1) {
                load[c[0]] += estimatedCost(tokens);
                continue;
            }
            // Insertion into byTokens, most tokens first, lower id first on ties: a handful of experts per call.
            int at = movable++;
            while (at > 0 && tokensPerExpert[byTokens[at - 1]] < tokens) {
                byTokens[at] = byTokens[at - 1];
                at--;
            }
            byTokens[at] = e;
        }
        for (int i = 0; i < movable; i++) {
            int e = byTokens[i];
            int best = -1;
            for (int g : layerCandidates[e]) if (best < 0 || load[g] < load[best]) best = g;
            groupOfExpert[e] = best;
            load[best] += estimatedCost(tokensPerExpert[e]);
        }
    }

    /**
     * What an expert's product costs for {@code tokens} tokens, in units of about 0.43 ms on the benchmark model: a
     * fixed part (streaming the weights) plus one unit per tile of 4 tokens, the kernels' token tile. JMH
     * (MatmulBenchmark, BF16, one thread, 2816 × 1024): 0.65 ms for 1 token, 0.85–0.89 for 2 to 4, 1.24–1.32 for 5 to 8;
     * so 4 tokens cost about what 2 do, and balancing token counts would misjudge most decode steps.
     */
    static int estimatedCost(int tokens) {
        return 1 + (tokens + 3) / 4;
    }

    /** The group batches of lane 0's call (for dispatchers and tests). */
    ExpertBatch[] batches() {
        return lanes[0].batches;
    }

    /** One call's state, allocated once: its group batches and what finish needs of its arguments. */
    private static final class Lane {
        final ExpertBatch[] batches;
        /** Per group whether it failed the call (degraded mode). */
        final boolean[] failed;
        int layer;
        int n;
        int k;
        int[] experts;
        float[] weights;
        float[] out;
        int[] stepRows;
        ExpertUnavailableException failure;
        boolean inFlight;

        Lane(int groups, int maxTokens, int k, int hidden) {
            batches = new ExpertBatch[groups];
            for (int g = 0; g < groups; g++) batches[g] = new ExpertBatch(maxTokens, k, hidden);
            failed = new boolean[groups];
        }
    }
}
