package io.moeserve.runtime.model;

import java.util.Arrays;
import java.util.List;

/**
 * Runs routed experts that are spread over several expert groups (sets of experts, each hosted by its own pods):
 * splits a layer call into one {@link ExpertBatch} per group, has a {@link ExpertBatchDispatcher} compute them, and
 * adds the groups' per-token partial sums into the output.
 *
 * <p>Design. The split is a single pass over the step's (token, expert) pairs: a pair goes to the group that hosts
 * its expert; when several groups host it (a hot expert replicated in two groups), to the candidate with the
 * fewest pairs so far in this call, lowest index on ties, so the choice is deterministic and spreads the load. A
 * token appears in a group's batch once, with all of its pairs for that group, so each group answers one vector
 * per token. Partial sums are added in group order. For top-2 routing the result is bit-identical to computing
 * every expert in one process (IEEE addition is commutative, and a pod's sum over its experts is the same sum the
 * local executor forms); for top-k above 2 it can differ in the last bits, as any change of summation order does.
 *
 * <p>Every (MoE layer, routed FFN expert) must be hosted by some group; that is checked when the executor is
 * built, so a hole in the expert map is a startup error, not a failure at the first request that needs it.
 */
public final class PartitionedExpertExecutor implements ExpertExecutor {
    private final ExpertBatchDispatcher dispatcher;
    private final ExpertBatch[] batches;
    /** candidates[layer][expert] = groups hosting it; null for dense layers. */
    private final int[][][] candidates;
    private final int hidden;

    /**
     * @param groups     what each group hosts, in group order
     * @param groupNames names for error messages
     * @param maxTokens  most tokens per layer call
     */
    public PartitionedExpertExecutor(ModelConfig config, List<? extends ExpertSelection> groups, List<String> groupNames,
                                     ExpertBatchDispatcher dispatcher, int maxTokens) {
        if (groups.isEmpty()) throw new IllegalArgumentException("no expert groups configured");
        if (groupNames.size() != groups.size()) throw new IllegalArgumentException("one name per expert group");
        this.dispatcher = dispatcher;
        this.hidden = config.hiddenSize();
        int k = config.moe().topK();
        this.batches = new ExpertBatch[groups.size()];
        for (int g = 0; g < batches.length; g++) batches[g] = new ExpertBatch(maxTokens, k, hidden);
        int ffn = config.moe().numFfnExperts();
        this.candidates = new int[config.numLayers()][][];
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
            }
        }
    }

    @Override
    public void computeExperts(int layer, int n, int k, float[] x, int[] experts, float[] weights, float[] out) {
        for (ExpertBatch b : batches) b.clear();
        int[][] layerCandidates = candidates[layer];
        for (int t = 0; t < n; t++) {
            for (int j = 0; j < k; j++) {
                int e = experts[t * k + j];
                if (e < 0) continue;
                ExpertBatch b = batches[choose(layerCandidates[e])];
                int i = b.lastTokenIfRow(t);
                if (i < 0) i = b.addToken(t, x, t * hidden);
                b.addPair(i, e, weights[t * k + j]);
            }
        }
        dispatcher.dispatch(layer, batches);
        Arrays.fill(out, 0, n * hidden, 0f);
        for (ExpertBatch b : batches) {
            for (int i = 0; i < b.size(); i++) VectorOps.add(b.out, i * hidden, out, b.rows[i] * hidden, hidden);
        }
    }

    private int choose(int[] groups) {
        if (groups.length == 1) return groups[0];
        int best = groups[0];
        for (int g : groups) if (batches[g].pairs() < batches[best].pairs()) best = g;
        return best;
    }

    /** The group batches of the call in progress (for dispatchers and tests). */
    ExpertBatch[] batches() {
        return batches;
    }
}
