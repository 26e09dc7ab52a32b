package io.moeserve.runtime.expert;

import io.moeserve.runtime.config.ModelConfig;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;

/**
 * A set of (layer, routed expert) pairs written as a placement spec, shared by the expert pods (what they host) and
 * the router's expert map (which group hosts what).
 *
 * <p>Grammar: entries separated by {@code ;}, each {@code LAYERS:EXPERTS}, where each side is {@code *} (all) or
 * a comma-separated list of ids and inclusive ranges {@code a-b}. Examples: {@code *:*} (everything),
 * {@code *:0-3} (experts 0 to 3 of every layer), {@code 0-7:*;8-15:0,2,5} (an explicit list). A single {@code *}
 * means {@code *:*}. Whitespace is ignored. Layer and expert bounds are checked against a model by
 * {@link #validate}: a spec naming expert 9 of an 8-expert model is an error, not an empty set.
 */
public final class ExpertSet implements ExpertSelection {
    private final String spec;
    private final List<Entry> entries;

    private record Entry(Range layers, Range experts) {}

    /** A list of ids and ranges, or everything (null bits). */
    private record Range(BitSet bits, int max) {
        boolean contains(int i) {
            return bits == null || bits.get(i);
        }
    }

    private ExpertSet(String spec, List<Entry> entries) {
        this.spec = spec;
        this.entries = entries;
    }

    /** Parses a spec; throws {@link IllegalArgumentException} naming the bad part. */
    public static ExpertSet parse(String spec) {
        if (spec == null || spec.isBlank()) throw new IllegalArgumentException("empty expert set spec");
        String s = spec.replaceAll("\\s+", "");
        if (s.equals("*")) s = "*:*";
        List<Entry> entries = new ArrayList<>();
        for (String part : s.split(";", -1)) {
            if (part.isEmpty()) throw new IllegalArgumentException("empty entry in expert set spec '" + spec + "'");
            int colon = part.indexOf(':');
            if (colon < 0 || colon != part.lastIndexOf(':')) {
                throw new IllegalArgumentException("expert set entry '" + part + "' must be LAYERS:EXPERTS (in '" + spec + "')");
            }
            entries.add(new Entry(range(part.substring(0, colon), "layers", spec),
                    range(part.substring(colon + 1), "experts", spec)));
        }
        return new ExpertSet(s, List.copyOf(entries));
    }

    private static Range range(String text, String what, String spec) {
        if (text.equals("*")) return new Range(null, -1);
        if (text.isEmpty()) throw new IllegalArgumentException("no " + what + " given in expert set spec '" + spec + "'");
        BitSet bits = new BitSet();
        int max = -1;
        for (String item : text.split(",", -1)) {
            int dash = item.indexOf('-');
            int from = id(dash < 0 ? item : item.substring(0, dash), what, spec);
            int to = dash < 0 ? from : id(item.substring(dash + 1), what, spec);
            if (to < from) throw new IllegalArgumentException("range " + item + " of " + what + " runs backwards in '" + spec + "'");
            bits.set(from, to + 1);
            max = Math.max(max, to);
        }
        return new Range(bits, max);
    }

    private static int id(String s, String what, String spec) {
        try {
            int v = Integer.parseInt(s);
            if (v < 0) throw new NumberFormatException();
            return v;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + s + "' is not a valid " + what + " id in expert set spec '" + spec + "'");
        }
    }

    @Override
    public boolean hosts(int layer, int expert) {
        for (Entry e : entries) {
            if (e.layers.contains(layer) && e.experts.contains(expert)) return true;
        }
        return false;
    }

    /**
     * Checks the spec against a model: every layer and expert it names explicitly must exist, and it must hold at
     * least one routed FFN expert of a MoE layer. MoE++'s zero-computation experts are never hosted by pods (they
     * run where the router runs), so naming them is an error.
     */
    public ExpertSet validate(ModelConfig config) {
        int ffn = config.moe().numFfnExperts();
        for (Entry e : entries) {
            if (e.layers.max >= config.numLayers()) {
                throw new IllegalArgumentException("expert set '" + spec + "' names layer " + e.layers.max
                        + " but the model has " + config.numLayers() + " layers");
            }
            if (e.experts.max >= ffn) {
                throw new IllegalArgumentException("expert set '" + spec + "' names expert " + e.experts.max
                        + " but the model's MoE layers have " + ffn + " routed FFN experts");
            }
        }
        if (count(config) == 0) {
            throw new IllegalArgumentException("expert set '" + spec + "' holds no routed expert of any MoE layer");
        }
        return this;
    }

    /** How many (MoE layer, FFN expert) pairs of the model the set holds. */
    public int count(ModelConfig config) {
        int n = 0;
        for (int l = 0; l < config.numLayers(); l++) {
            if (!config.isSparse(l)) continue;
            for (int e = 0; e < config.moe().numFfnExperts(); e++) if (hosts(l, e)) n++;
        }
        return n;
    }

    /** The spec, normalised (whitespace removed, a lone {@code *} expanded). */
    public String spec() {
        return spec;
    }

    @Override
    public String toString() {
        return spec;
    }
}
