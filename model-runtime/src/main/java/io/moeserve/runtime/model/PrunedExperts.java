package io.moeserve.runtime.model;

import java.util.Arrays;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.IntStream;

/**
 * Experts pruned at run time: the gate of each listed layer sees their logits as −∞, so it never picks them and
 * spreads the routing over the others exactly as if their rows had been cut from {@code gate.weight} (softmax over
 * the rest, top-k among the rest, renormalisation among the chosen). This is the run-time partner of a pruned
 * checkpoint (EEP / MC-SMoE's frequency-based expert pruning): the same model without the experts, with no file
 * written, which makes it a differential reference for the checkpoint and a switch of its own.
 *
 * <p>Spec: {@code LAYER:E,E,...} entries separated by {@code ;}, where LAYER is a decoder layer index or {@code *}
 * for every MoE layer (a layer's own entry adds to {@code *}'s), e.g. {@code "*:3;5:0,7"}. Empty = none. Only gates
 * that are a linear map of the hidden state can prune (every family but MoE++).
 */
public final class PrunedExperts {
    public static final PrunedExperts NONE = new PrunedExperts(new int[0], Map.of());

    private final int[] everyLayer;
    private final Map<Integer, int[]> byLayer;

    private PrunedExperts(int[] everyLayer, Map<Integer, int[]> byLayer) {
        this.everyLayer = everyLayer;
        this.byLayer = byLayer;
    }

    /** Parses the spec above; throws IllegalArgumentException, naming the bad part, on anything else. */
    public static PrunedExperts parse(String spec) {
        if (spec == null || spec.isBlank()) return NONE;
        int[] every = new int[0];
        Map<Integer, int[]> layers = new TreeMap<>();
        for (String entry : spec.split(";")) {
            String e = entry.strip();
            if (e.isEmpty()) continue;
            int colon = e.indexOf(':');
            if (colon < 0) throw new IllegalArgumentException("pruned experts '" + e + "': expected LAYER:E,E,... or *:E,E,...");
            String layer = e.substring(0, colon).strip();
            int[] ids = ids(e.substring(colon + 1), e);
            if (layer.equals("*")) {
                every = union(every, ids);
            } else {
                int l = number(layer, e);
                layers.merge(l, ids, PrunedExperts::union);
            }
        }
        return every.length == 0 && layers.isEmpty() ? NONE : new PrunedExperts(every, Map.copyOf(layers));
    }

    /** Whether nothing is pruned. */
    public boolean isEmpty() {
        return everyLayer.length == 0 && byLayer.isEmpty();
    }

    /**
     * The sorted expert ids pruned in {@code layer}, or null for none.
     *
     * @throws IllegalArgumentException if an id is not below {@code numExperts} or fewer than topK experts remain
     */
    public int[] forLayer(int layer, int numExperts, int topK) {
        int[] ids = union(everyLayer, byLayer.getOrDefault(layer, new int[0]));
        if (ids.length == 0) return null;
        if (ids[ids.length - 1] >= numExperts) {
            throw new IllegalArgumentException("pruned expert " + ids[ids.length - 1] + " of layer " + layer
                    + " does not exist (the layer has " + numExperts + " experts)");
        }
        if (numExperts - ids.length < topK) {
            throw new IllegalArgumentException("pruning " + ids.length + " of layer " + layer + "'s " + numExperts
                    + " experts leaves fewer than top-k (" + topK + ")");
        }
        return ids;
    }

    /** The layers named by their own index (not {@code *}). */
    public Set<Integer> namedLayers() {
        return byLayer.keySet();
    }

    private static int[] ids(String list, String entry) {
        String[] parts = list.split(",");
        int[] out = new int[parts.length];
        for (int i = 0; i < parts.length; i++) out[i] = number(parts[i].strip(), entry);
        return union(out, new int[0]);
    }

    private static int number(String s, String entry) {
        try {
            int v = Integer.parseInt(s);
            if (v < 0) throw new NumberFormatException();
            return v;
        } catch (NumberFormatException x) {
            throw new IllegalArgumentException("pruned experts '" + entry + "': '" + s + "' is not a non-negative integer");
        }
    }

    private static int[] union(int[] a, int[] b) {
        return IntStream.concat(Arrays.stream(a), Arrays.stream(b)).distinct().sorted().toArray();
    }

    @Override
    public String toString() {
        StringBuilder s = new StringBuilder();
        if (everyLayer.length > 0) s.append("*:").append(join(everyLayer));
        for (Map.Entry<Integer, int[]> e : byLayer.entrySet()) {
            if (!s.isEmpty()) s.append(';');
            s.append(e.getKey()).append(':').append(join(e.getValue()));
        }
        return s.toString();
    }

    private static String join(int[] ids) {
        StringBuilder s = new StringBuilder();
        for (int id : ids) {
            if (!s.isEmpty()) s.append(',');
            s.append(id);
        }
        return s.toString();
    }
}
