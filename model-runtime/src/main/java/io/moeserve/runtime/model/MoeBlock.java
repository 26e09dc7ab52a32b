package io.moeserve.runtime.model;

import io.moeserve.runtime.config.MoeConfig;
import io.moeserve.runtime.expert.ExpertExecutor;

/**
 * A Mixture-of-Experts FFN, in the order every family computes it: the {@link Gate} picks each token's experts and
 * weights; the routed FFN experts run through an {@link ExpertExecutor} (here, or in expert pods); experts that
 * run where the gate runs ({@link RouterSideExperts}, MoE++'s zero-computation ones) add their terms; a
 * {@link SharedExpert}, where the family has one, adds its output. Between the gate and the executor, the model's
 * {@link ExpertSkipper} may drop weak pairs (MC-MoE's dynamic skipping; off unless set). Reads {@code b.normed},
 * writes {@code b.projected}.
 *
 * <p>Merged experts. In a merged checkpoint ({@code moe merge}) the gate still scores every original expert, and an
 * alias table maps each one to the merged expert that now computes it. The block rewrites the gate's choices to
 * merged ids right after the gate, before anything else sees them, so routing statistics, skipping, executors and
 * expert pods all speak of merged experts. When two of a token's choices alias to the same merged expert, the
 * first slot takes the summed weight and the second becomes -1 with weight 0: one expert call instead of two, the
 * same sum w₁·y + w₂·y = (w₁ + w₂)·y up to rounding. Slots at -1 are skipped by every consumer.
 *
 * <p>Overlap. When the routed experts are expert pods, their call is sent first ({@link #begin}) and the router
 * computes the shared expert while the answers travel; {@link #finish} then waits and adds in the order above:
 * projected = routed, += router-side, += shared. Only where each term is computed moves, never the order of the
 * additions, so the output is bit for bit what the sequential block computes. The router-side experts are added in
 * finish, straight into {@code b.projected}: MoE++'s zero-computation experts cost a pass over the hidden state, and
 * summing them in scratch first would change the rounding of tokens with more than one of them.
 *
 * <p>Internal to the model: model families assemble it (one per MoE layer), {@link MoeModel} runs it. Not
 * reentrant; its scratch is the step's {@link ForwardBuffers}.
 */
public final class MoeBlock implements FeedForward {
    private final int hidden;
    private final int topK;
    private final int numFfnExperts;
    private final Gate gate;
    private final ExpertExecutor routed;
    private final float expertInputScale;
    private final RouterSideExperts routerSide;
    private final SharedExpert shared; // or null
    private int[] alias; // gate output -> merged expert, or null
    private Gate nextGate;             // the next MoE layer's gate, for pre-gating; null when the executor does not prefetch
    private int nextLayer = -1;
    private int[] nextAlias;           // the next MoE layer's alias table (merged experts), or null

    /** A block of routed experts only. */
    public MoeBlock(MoeConfig m, int hidden, int maxTokens, Gate gate, ExpertExecutor routed) {
        this(m, hidden, maxTokens, gate, routed, null, RouterSideExperts.NONE, 1f);
    }

    /** Routed experts plus a shared expert. */
    public MoeBlock(MoeConfig m, int hidden, int maxTokens, Gate gate, ExpertExecutor routed, SharedExpert shared) {
        this(m, hidden, maxTokens, gate, routed, shared, RouterSideExperts.NONE, 1f);
    }

    /**
     * @param shared           the shared expert, or null
     * @param routerSide       experts with ids from numFfnExperts up, computed here
     * @param expertInputScale multiplies the experts' input (MoE++'s released code doubles it), 1 for none
     */
    public MoeBlock(MoeConfig m, int hidden, int maxTokens, Gate gate, ExpertExecutor routed, SharedExpert shared,
                    RouterSideExperts routerSide, float expertInputScale) {
        this.hidden = hidden;
        this.topK = m.topK();
        this.numFfnExperts = m.numFfnExperts();
        this.gate = gate;
        this.routed = routed;
        this.shared = shared;
        this.routerSide = routerSide;
        this.expertInputScale = expertInputScale;
    }

    /**
     * Has each call tell the executor which experts of MoE layer {@code layer} its tokens are likely to pick, by
     * applying that layer's gate to this layer's normed hidden states (pre-gating), so that an executor keeping only
     * part of the experts in memory reads those in while this layer computes. Only a {@link LinearGate} can be
     * applied out of turn: it keeps no state from one call to the next (MoE++'s gate carries its residual).
     */
    void predictFor(int layer, MoeBlock next) {
        if (next.gate instanceof LinearGate) {
            this.nextGate = next.gate;
            this.nextLayer = layer;
            this.nextAlias = next.alias;
        }
    }

    /** Prunes these experts at run time ({@link PrunedExperts}); only a linear gate can. */
    void pruneExperts(int layer, int[] experts) {
        if (!(gate instanceof LinearGate linear)) {
            throw new IllegalArgumentException("layer " + layer + "'s gate (" + gate.getClass().getSimpleName() + ") cannot prune experts");
        }
        linear.prune(experts);
    }

    /** Routes each gate output to its merged expert ({@code MoeConfig.aliasOf}); null for none. */
    void aliasExperts(int[] alias) {
        this.alias = alias;
    }

    /**
     * Rewrites the gate's n·k choices to merged experts; a token's second choice of the same merged expert adds its
     * weight to the first and leaves its slot at -1 with weight 0.
     */
    static void applyAlias(int[] alias, int n, int k, int[] experts, float[] weights) {
        for (int t = 0; t < n; t++) {
            int row = t * k;
            for (int j = 0; j < k; j++) {
                int m = alias[experts[row + j]];
                int first = -1;
                for (int i = 0; i < j && first < 0; i++) if (experts[row + i] == m) first = i;
                if (first < 0) {
                    experts[row + j] = m;
                } else {
                    weights[row + first] += weights[row + j];
                    weights[row + j] = 0f;
                    experts[row + j] = -1;
                }
            }
        }
    }

    @Override
    public void forward(int layer, StepBatch batch, ForwardBuffers b, Compute c, RoutingObserver observer) {
        begin(layer, batch, b, c, observer, null, 0);
        finish(layer, batch, b, c, 0);
    }

    /** Routes the tokens, sends the routed experts' call, and computes the shared expert while it is out. */
    @Override
    public void begin(int layer, StepBatch batch, ForwardBuffers b, Compute c, RoutingObserver observer, int[] stepRows, int lane) {
        int n = batch.size;
        int k = topK;
        gate.route(n, b.normed, b.experts, b.weights, c.kernels(), lane);
        if (alias != null) applyAlias(alias, n, k, b.experts, b.weights);
        observer.onRouting(layer, batch, k, b.experts, b.weights);

        float[] x = expertInput(b);
        if (expertInputScale != 1f) {
            for (int i = 0; i < n * hidden; i++) b.expertInput[i] = b.normed[i] * expertInputScale;
        }
        // The executor sees the FFN experts only; the slots of experts computed here are marked -1 for it.
        for (int i = 0; i < n * k; i++) b.routedExperts[i] = b.experts[i] < numFfnExperts ? b.experts[i] : -1;
        // (An aliased duplicate is already -1.)
        // Skipped pairs leave here marked -1 as well, so that no executor, local or remote, ever sees them.
        ExpertSkipper skipper = b.skipper;
        if (skipper != null && skipper.active()) {
            int pairs = skipper.apply(batch, n, k, b.normed, b.experts, b.weights, b.routedExperts);
            if (pairs > 0) observer.onSkipped(layer, batch, k, b.experts, skipper.skipped, pairs);
        }
        if (nextGate != null) {
            // Into buffers of its own: the prediction never touches what this layer computes with.
            nextGate.route(n, b.normed, b.predictedExperts, b.predictedWeights, c.kernels(), lane);
            // A merged checkpoint's executor holds merged experts: predict those (a repeat is read in once).
            if (nextAlias != null) {
                for (int i = 0; i < n * k; i++) b.predictedExperts[i] = nextAlias[b.predictedExperts[i]];
            }
            routed.prefetch(nextLayer, n, k, b.predictedExperts);
        }
        routed.begin(batch.id(), layer, n, k, x, b.routedExperts, b.weights, b.projected, stepRows, lane);
        if (shared != null) shared.compute(n, b.normed, b, c);
    }

    /** Waits for the routed experts' answers and adds the router-side and shared experts' terms to them. */
    @Override
    public void finish(int layer, StepBatch batch, ForwardBuffers b, Compute c, int lane) {
        int n = batch.size;
        if (routed.waitsOnOtherProcesses()) {
            // Expert pods compute while this thread waits: the pool's workers need not spin meanwhile.
            c.parallel().stayAwake(false);
            try {
                routed.finish(lane);
            } finally {
                c.parallel().stayAwake(true);
            }
        } else {
            routed.finish(lane);
        }
        routerSide.add(n, topK, expertInput(b), b.experts, b.weights, b.projected);
        if (shared != null) shared.addTo(n, hidden, b.projected, b);
    }

    private float[] expertInput(ForwardBuffers b) {
        return expertInputScale != 1f ? b.expertInput : b.normed;
    }
}
