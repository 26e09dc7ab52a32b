package io.moeserve.router;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.MeterRegistry;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.model.RoutingObserver;
import io.moeserve.runtime.model.StepBatch;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * Counts the gates' choices per (layer, routed expert): the input of placement planning and of the per-expert
 * routing metric.
 *
 * <p>The forward pass reports every layer's choices to {@link #onRouting}, which adds them to a plain per-step
 * array (the forward thread is the only writer); the engine {@link #commit}s them once the step succeeded, or
 * {@link #discard}s them when it is re-run without a failed sequence, so a retried step is never counted twice.
 * Committed counts are atomics read by the metrics scrape and the JSON endpoint.
 */
final class RoutingStatistics implements RoutingObserver {
    private final int layers;
    private final int experts;
    private final boolean[] sparse;
    private final int firstSparse;
    private final long[] step;
    private final AtomicLongArray committed;
    private final long sinceMillis = System.currentTimeMillis();
    private volatile long totalTokens;
    private long stepTokens;

    RoutingStatistics(ModelConfig config, MeterRegistry registry) {
        this.layers = config.numLayers();
        this.experts = config.moe().numFfnExperts();
        this.sparse = new boolean[layers];
        this.step = new long[layers * experts];
        this.committed = new AtomicLongArray(layers * experts);
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
            if (e >= 0 && e < experts) step[base + e]++;
        }
        if (layer == firstSparse) stepTokens += n;
    }

    void commit() {
        for (int i = 0; i < step.length; i++) {
            if (step[i] != 0) {
                committed.addAndGet(i, step[i]);
                step[i] = 0;
            }
        }
        totalTokens += stepTokens;
        stepTokens = 0;
    }

    void discard() {
        java.util.Arrays.fill(step, 0);
        stepTokens = 0;
    }

    /** The JSON document of docs/architecture.md. */
    Snapshot snapshot(String model, long routingTableVersion, String router) {
        long[][] tokens = new long[layers][];
        int moeLayers = 0;
        for (int l = 0; l < layers; l++) if (sparse[l]) moeLayers++;
        int[] moe = new int[moeLayers];
        int m = 0;
        for (int l = 0; l < layers; l++) {
            if (!sparse[l]) {
                tokens[l] = new long[0];
                continue;
            }
            moe[m++] = l;
            tokens[l] = new long[experts];
            for (int e = 0; e < experts; e++) tokens[l][e] = committed.get(l * experts + e);
        }
        return new Snapshot("moe-serve.routing-stats.v1", model, router, routingTableVersion, layers, experts, moe, sinceMillis,
                System.currentTimeMillis(), totalTokens, tokens);
    }

    /**
     * Field names as the JSON format spells them (Jackson writes record components by name). {@code router} names
     * the router instance (host:gRPC port), so that the planner can sum the loads of several routers.
     */
    record Snapshot(String schema, String model, String router, long routing_table_version, int num_layers, int num_experts,
                    int[] moe_layers, long since_unix_millis, long at_unix_millis, long total_tokens, long[][] tokens) {}
}
