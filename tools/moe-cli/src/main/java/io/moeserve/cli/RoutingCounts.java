package io.moeserve.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.model.RoutingObserver;
import io.moeserve.runtime.model.StepBatch;

/**
 * What the gates chose during {@code moe eval}: per (layer, routed expert) how many tokens were sent to it and the
 * sum of their combine weights, as the router's RoutingStatistics counts them but with the weights too, which
 * importance-based techniques (activation frequency × mean gate weight) need. Ids outside the routed experts
 * (MoE++'s zero, copy and constant experts) are not counted.
 */
final class RoutingCounts implements RoutingObserver {
    private final ModelConfig config;
    private final int experts;
    private final long[] counts;
    private final double[] weightSums;
    private long tokens;
    /** Routed (token, FFN expert) pairs the gates chose, over every MoE layer, and how many of them skipping dropped. */
    private long chosenPairs;
    private long skippedPairs;
    private int moeLayers;
    private int firstSparse = -1;

    RoutingCounts(ModelConfig config) {
        this.config = config;
        this.experts = config.moe().numFfnExperts();
        this.counts = new long[config.numLayers() * experts];
        this.weightSums = new double[config.numLayers() * experts];
        for (int l = config.numLayers() - 1; l >= 0; l--) {
            if (!config.isSparse(l)) continue;
            firstSparse = l;
            moeLayers++;
        }
    }

    @Override
    public void onRouting(int layer, StepBatch batch, int k, int[] chosen, float[] weights) {
        int n = batch.size();
        int base = layer * experts;
        for (int i = 0; i < n * k; i++) {
            int e = chosen[i];
            if (e < 0 || e >= experts) continue;
            counts[base + e]++;
            weightSums[base + e] += weights[i];
            chosenPairs++;
        }
        if (layer == firstSparse) tokens += n;
    }

    @Override
    public void onSkipped(int layer, StepBatch batch, int k, int[] experts, int[] skipped, int pairs) {
        skippedPairs += pairs;
    }

    /** Routed expert pairs computed per token per MoE layer (the gates' choices less what skipping dropped). */
    double computedPairsPerToken() {
        return tokens == 0 ? 0 : (double) (chosenPairs - skippedPairs) / tokens / moeLayers;
    }

    /** The share of the gates' routed pairs that skipping dropped. */
    double skippedShare() {
        return chosenPairs == 0 ? 0 : (double) skippedPairs / chosenPairs;
    }

    long count(int layer, int expert) {
        return counts[layer * experts + expert];
    }

    /** The JSON document {@code --routing-stats} writes. */
    ObjectNode toJson(ObjectMapper mapper, String model) {
        ObjectNode root = mapper.createObjectNode();
        root.put("format", "moe-serve.routing-stats.v1");
        root.put("model", model);
        root.put("tokens", tokens);
        root.put("top_k", config.moe().topK());
        root.put("experts", experts);
        ArrayNode layers = root.putArray("layers");
        for (int l = 0; l < config.numLayers(); l++) {
            if (!config.isSparse(l)) continue;
            ObjectNode layer = layers.addObject();
            layer.put("layer", l);
            ArrayNode list = layer.putArray("experts");
            for (int e = 0; e < experts; e++) {
                long c = counts[l * experts + e];
                ObjectNode expert = list.addObject();
                expert.put("expert", e);
                expert.put("count", c);
                expert.put("frequency", tokens == 0 ? 0 : (double) c / tokens);
                expert.put("mean_weight", c == 0 ? 0 : weightSums[l * experts + e] / c);
            }
        }
        return root;
    }
}
