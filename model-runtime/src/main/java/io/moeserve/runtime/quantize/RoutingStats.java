package io.moeserve.runtime.quantize;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.generate.Generator;
import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.RoutingObserver;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * How often each routed expert was chosen and with what combine weight: the input of mixed-precision expert
 * quantization (MC-MoE's PMQ). As a file (written by {@code moe eval --routing-stats} and read by
 * {@code moe quantize --stats}):
 * <pre>
 * {"layers": [{"layer": 1, "experts": [{"expert": 0, "count": 812, "mean_weight": 0.41}, ...]}, ...]}
 * </pre>
 * {@code count} is the number of tokens routed to the expert (a (token, expert) pair each), {@code mean_weight} the
 * mean of the combine weights those tokens gave it (after the family's normalisation and scaling, as the MoE block
 * multiplies the expert's output by it). Layers without routed experts are absent; an expert absent from its
 * layer's list was never chosen. Ids past the FFN experts (MoE++'s zero, copy and constant experts) may be listed
 * and are skipped: they have no weights to quantize.
 *
 * <p>The router's {@code /v1/routing-stats} document (docs/architecture.md) is read as well: its
 * {@code tokens[l][e]} are the counts and its {@code mean_weights[l][e]}, where present, the mean weights (absent, as
 * in snapshots from before the field, every mean weight is taken as 1, so importance is the frequency alone). So a
 * deployment's own statistics can drive {@code moe quantize} and {@code moe prune} as {@code moe eval}'s do.
 *
 * <p>The importance of expert e of a layer is its activation frequency times its mean weight,
 * {@code (count_e / Σ count) · mean_weight_e}: the share of the layer's routed output mass the expert carries.
 */
public final class RoutingStats {

    private static final JsonMapper MAPPER = JsonMapper.builder().enable(SerializationFeature.INDENT_OUTPUT).build();

    private final long[][] counts;
    private final double[][] weightSums;

    /** Empty statistics for {@code layers} decoder layers of {@code experts} routed experts each. */
    public RoutingStats(int layers, int experts) {
        counts = new long[layers][experts];
        weightSums = new double[layers][experts];
    }

    public int layers() {
        return counts.length;
    }

    public int experts() {
        return counts.length == 0 ? 0 : counts[0].length;
    }

    public long count(int layer, int expert) {
        return counts[layer][expert];
    }

    public double meanWeight(int layer, int expert) {
        long n = counts[layer][expert];
        return n == 0 ? 0 : weightSums[layer][expert] / n;
    }

    /** Adds {@code count} routings to the expert with mean weight {@code meanWeight}. */
    public void add(int layer, int expert, long count, double meanWeight) {
        if (count < 0 || !(meanWeight >= 0)) {
            throw new IllegalArgumentException("layer " + layer + " expert " + expert + ": count " + count
                    + " and mean_weight " + meanWeight + " must be non-negative");
        }
        counts[layer][expert] += count;
        weightSums[layer][expert] += count * meanWeight;
    }

    /** Whether any token was routed in this layer. */
    public boolean observed(int layer) {
        return Arrays.stream(counts[layer]).sum() > 0;
    }

    /** Importance of each expert of the layer: activation frequency × mean combine weight (all 0 if unobserved). */
    public double[] importance(int layer) {
        long total = Arrays.stream(counts[layer]).sum();
        double[] out = new double[counts[layer].length];
        if (total == 0) return out;
        for (int e = 0; e < out.length; e++) out[e] = (double) counts[layer][e] / total * meanWeight(layer, e);
        return out;
    }

    /** An observer that adds every routing decision of a forward pass to these statistics. */
    public RoutingObserver observer() {
        return (layer, batch, k, experts, weights) -> {
            for (int i = 0; i < batch.size() * k; i++) {
                if (experts[i] >= counts[layer].length) continue; // MoE++'s zero-computation experts
                counts[layer][experts[i]]++;
                weightSums[layer][experts[i]] += weights[i];
            }
        };
    }

    /**
     * Measures the statistics by running the model over {@code tokens} (calibration text), in windows of at most
     * {@code window} tokens, each its own sequence from position 0.
     */
    public static RoutingStats measure(MoeModel model, int[] tokens, int window) {
        if (tokens.length == 0) throw new IllegalArgumentException("the calibration text has no tokens");
        RoutingStats stats = new RoutingStats(model.config().numLayers(), model.config().moe().numFfnExperts());
        KvCache cache = model.newKvCache(window, 1);
        Generator generator = new Generator(model, cache);
        RoutingObserver observer = stats.observer();
        for (int from = 0; from < tokens.length; from += window) {
            int slot = cache.allocateSequence();
            generator.prefill(Arrays.copyOfRange(tokens, from, Math.min(tokens.length, from + window)), slot, observer);
            cache.release(slot);
        }
        return stats;
    }

    /** Reads the file format above; layers beyond the model's are refused, experts past its FFN experts skipped. */
    public static RoutingStats read(Path file, int layers, int experts) {
        JsonNode root;
        try {
            root = MAPPER.readTree(file.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read routing statistics " + file + ": " + e.getMessage(), e);
        }
        if (root != null && root.path("tokens").isArray()) return readRouterSnapshot(root, file, layers, experts);
        JsonNode list = root == null ? null : root.get("layers");
        if (list == null || !list.isArray()) {
            throw new IllegalArgumentException(file + " has neither a \"layers\" list nor the router's \"tokens\" table");
        }
        RoutingStats stats = new RoutingStats(layers, experts);
        for (JsonNode l : list) {
            int layer = index(l, "layer", layers, file);
            JsonNode es = l.get("experts");
            if (es == null || !es.isArray()) throw new IllegalArgumentException(file + ": layer " + layer + " has no \"experts\" list");
            for (JsonNode e : es) {
                int expert = index(e, "expert", Integer.MAX_VALUE, file);
                if (expert >= experts) continue; // past the FFN experts: MoE++'s zero, copy and constant experts
                JsonNode count = e.get("count");
                JsonNode weight = e.get("mean_weight");
                if (count == null || !count.canConvertToLong() || weight == null || !weight.isNumber()) {
                    throw new IllegalArgumentException(file + ": layer " + layer + " expert " + expert
                            + " needs an integer \"count\" and a number \"mean_weight\", found " + e);
                }
                stats.add(layer, expert, count.asLong(), weight.asDouble());
            }
        }
        return stats;
    }

    /** The router's /v1/routing-stats document: tokens[l][e] and, where present, mean_weights[l][e]. */
    private static RoutingStats readRouterSnapshot(JsonNode root, Path file, int layers, int experts) {
        JsonNode tokens = root.get("tokens");
        JsonNode weights = root.path("mean_weights");
        if (tokens.size() != layers) throw new IllegalArgumentException(file + ": \"tokens\" must hold one list per layer (" + layers + ")");
        RoutingStats stats = new RoutingStats(layers, experts);
        for (int l = 0; l < layers; l++) {
            JsonNode row = tokens.get(l);
            if (row.isEmpty()) continue; // a dense layer
            if (row.size() < experts) throw new IllegalArgumentException(file + ": tokens[" + l + "] must hold " + experts + " counts");
            JsonNode w = weights.isArray() ? weights.get(l) : null;
            for (int e = 0; e < experts; e++) {
                JsonNode count = row.get(e);
                if (!count.canConvertToLong() || count.asLong() < 0) {
                    throw new IllegalArgumentException(file + ": tokens[" + l + "][" + e + "] must be a count, found " + count);
                }
                stats.add(l, e, count.asLong(), w == null ? 1.0 : w.get(e).asDouble());
            }
        }
        return stats;
    }

    /** Writes the file format above (observed layers only). */
    public void write(Path file) {
        ObjectNode root = MAPPER.createObjectNode();
        ArrayNode list = root.putArray("layers");
        for (int l = 0; l < layers(); l++) {
            if (!observed(l)) continue;
            ObjectNode layer = list.addObject();
            layer.put("layer", l);
            ArrayNode es = layer.putArray("experts");
            for (int e = 0; e < experts(); e++) {
                es.addObject().put("expert", e).put("count", counts[l][e]).put("mean_weight", meanWeight(l, e));
            }
        }
        try {
            MAPPER.writeValue(file.toFile(), root);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }

    private static int index(JsonNode node, String field, int bound, Path file) {
        JsonNode v = node.get(field);
        if (v == null || !v.canConvertToInt() || v.asInt() < 0 || v.asInt() >= bound) {
            throw new IllegalArgumentException(file + ": \"" + field + "\" must be an integer in [0, " + bound + "), found " + node);
        }
        return v.asInt();
    }
}
