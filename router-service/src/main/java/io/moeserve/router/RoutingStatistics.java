package io.moeserve.router;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.MeterRegistry;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.model.RoutingObserver;
import io.moeserve.runtime.model.StepBatch;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.atomic.DoubleAdder;

/**
 * Counts the gates' choices per (layer, routed expert), and sums the combine weights they gave: the input of
 * placement planning, of the per-expert routing metric and of expert pruning (importance = count × mean weight).
 *
 * <p>The forward pass reports every layer's choices to {@link #onRouting}, which adds them to a plain per-step
 * array (the forward thread is the only writer); the engine {@link #commit}s them once the step succeeded, or
 * {@link #discard}s them when it is re-run without a failed sequence, so a retried step is never counted twice.
 * Committed counts are atomics read by the metrics scrape and the JSON endpoint.
 *
 * <p>Expert skipping ({@link #onSkipped}) is counted the same way: the (token, expert) pairs dropped, per layer and
 * expert, and the expert calls saved: per step and layer, the experts the gate chose whose every pair was dropped,
 * so that nothing at all was computed for them (one batched FFN call fewer here, one expert fewer in a pod's call).
 * A call to a pod saved because all of its experts went shows as fewer {@code moe_router_expert_calls_total}.
 */
final class RoutingStatistics implements RoutingObserver {
    private final int layers;
    private final int experts;
    private final boolean[] sparse;
    private final int firstSparse;
    private final long[] step;
    private final AtomicLongArray committed;
    private final double[] stepWeight;
    private final DoubleAdder[] committedWeight;
    private final long[] stepSkipped;
    private final AtomicLongArray committedSkipped;
    private final long[] stepSavedCalls;
    private final AtomicLongArray committedSavedCalls;
    private final int[] chosenScratch;
    private final int[] skippedScratch;
    private final long sinceMillis = System.currentTimeMillis();
    private volatile long totalTokens;
    private long stepTokens;

    RoutingStatistics(ModelConfig config, MeterRegistry registry) {
        this.layers = config.numLayers();
        this.experts = config.moe().numFfnExperts();
        this.sparse = new boolean[layers];
        this.step = new long[layers * experts];
        this.committed = new AtomicLongArray(layers * experts);
        this.stepWeight = new double[layers * experts];
        this.committedWeight = new DoubleAdder[layers * experts];
        for (int i = 0; i < committedWeight.length; i++) committedWeight[i] = new DoubleAdder();
        this.stepSkipped = new long[layers * experts];
        this.committedSkipped = new AtomicLongArray(layers * experts);
        this.stepSavedCalls = new long[layers];
        this.committedSavedCalls = new AtomicLongArray(layers);
        this.chosenScratch = new int[experts];
        this.skippedScratch = new int[experts];
        FunctionCounter.builder("moe.router.expert.skipped.pairs", this, RoutingStatistics::skippedPairs)
                .description("(token, expert) pairs dropped by expert skipping: never computed nor sent").register(registry);
        FunctionCounter.builder("moe.router.expert.skipped.calls", this, RoutingStatistics::savedCalls)
                .description("(step, layer, expert) calls saved by expert skipping: every pair of the expert dropped").register(registry);
        for (int l = 0; l < layers; l++) {
            sparse[l] = config.isSparse(l);
            if (!sparse[l]) continue;
            for (int e = 0; e < experts; e++) {
                int cell = l * experts + e;
                FunctionCounter.builder("moe.router.expert.tokens", committed, c -> c.get(cell))
                        .description("Tokens the gates routed to the expert")
                        .tags("layer", Integer.toString(l), "expert", Integer.toString(e)).register(registry);
            }
        }
        int first = -1;
        for (int l = layers - 1; l >= 0; l--) if (sparse[l]) first = l;
        this.firstSparse = first;
    }

    @Override
    public void onRouting(int layer, StepBatch batch, int k, int[] chosen, float[] weights) {
        int n = batch.size();
        int base = layer * experts;
        for (int i = 0; i < n * k; i++) {
            int e = chosen[i];
            if (e >= 0 && e < experts) {
                step[base + e]++;
                stepWeight[base + e] += weights[i];
            }
        }
        if (layer == firstSparse) stepTokens += n;
    }

    @Override
    public void onSkipped(int layer, StepBatch batch, int k, int[] chosen, int[] skipped, int pairs) {
        int n = batch.size();
        int base = layer * experts;
        Arrays.fill(chosenScratch, 0);
        Arrays.fill(skippedScratch, 0);
        for (int i = 0; i < n * k; i++) {
            int e = chosen[i];
            if (e < 0 || e >= experts) continue;
            chosenScratch[e]++;
            if (skipped[i] >= 0) {
                skippedScratch[e]++;
                stepSkipped[base + e]++;
            }
        }
        for (int e = 0; e < experts; e++) if (chosenScratch[e] > 0 && skippedScratch[e] == chosenScratch[e]) stepSavedCalls[layer]++;
    }

    void commit() {
        for (int i = 0; i < step.length; i++) {
            if (step[i] != 0) {
                committed.addAndGet(i, step[i]);
                step[i] = 0;
            }
            if (stepWeight[i] != 0) {
                committedWeight[i].add(stepWeight[i]);
                stepWeight[i] = 0;
            }
            if (stepSkipped[i] != 0) {
                committedSkipped.addAndGet(i, stepSkipped[i]);
                stepSkipped[i] = 0;
            }
        }
        for (int l = 0; l < layers; l++) {
            if (stepSavedCalls[l] != 0) {
                committedSavedCalls.addAndGet(l, stepSavedCalls[l]);
                stepSavedCalls[l] = 0;
            }
        }
        totalTokens += stepTokens;
        stepTokens = 0;
    }

    void discard() {
        Arrays.fill(step, 0);
        Arrays.fill(stepSkipped, 0);
        Arrays.fill(stepWeight, 0);
        Arrays.fill(stepSavedCalls, 0);
        stepTokens = 0;
    }

    /** The JSON document of docs/architecture.md. */
    Snapshot snapshot(String model, long routingTableVersion, String router) {
        long[][] tokens = new long[layers][];
        long[][] skipped = new long[layers][];
        double[][] meanWeights = new double[layers][];
        long[] savedCalls = new long[layers];
        int moeLayers = 0;
        for (int l = 0; l < layers; l++) if (sparse[l]) moeLayers++;
        int[] moe = new int[moeLayers];
        int m = 0;
        for (int l = 0; l < layers; l++) {
            if (!sparse[l]) {
                tokens[l] = new long[0];
                skipped[l] = new long[0];
                meanWeights[l] = new double[0];
                continue;
            }
            moe[m++] = l;
            tokens[l] = new long[experts];
            skipped[l] = new long[experts];
            meanWeights[l] = new double[experts];
            for (int e = 0; e < experts; e++) {
                tokens[l][e] = committed.get(l * experts + e);
                meanWeights[l][e] = tokens[l][e] == 0 ? 0 : committedWeight[l * experts + e].sum() / tokens[l][e];
                skipped[l][e] = committedSkipped.get(l * experts + e);
            }
            savedCalls[l] = committedSavedCalls.get(l);
        }
        return new Snapshot("moe-serve.routing-stats.v1", model, router, routingTableVersion, layers, experts, moe, sinceMillis,
                System.currentTimeMillis(), totalTokens, tokens, meanWeights, skipped, savedCalls);
    }

    private double skippedPairs() {
        long sum = 0;
        for (int i = 0; i < committedSkipped.length(); i++) sum += committedSkipped.get(i);
        return sum;
    }

    private double savedCalls() {
        long sum = 0;
        for (int l = 0; l < layers; l++) sum += committedSavedCalls.get(l);
        return sum;
    }

    /**
     * Field names as the JSON format spells them (Jackson writes record components by name). {@code router} names
     * the router instance (host:gRPC port), so that the planner can sum the loads of several routers.
     */
    record Snapshot(String schema, String model, String router, long routing_table_version, int num_layers, int num_experts,
                    int[] moe_layers, long since_unix_millis, long at_unix_millis, long total_tokens, long[][] tokens,
                    double[][] mean_weights, long[][] skipped_pairs, long[] skipped_expert_calls) {}
}
