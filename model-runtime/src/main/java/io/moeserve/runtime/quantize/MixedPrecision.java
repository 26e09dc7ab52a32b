package io.moeserve.runtime.quantize;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Quantization;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.TreeMap;

/**
 * A bit width for each routed expert, from its importance, under a byte budget: MC-MoE's pre-loading
 * mixed-precision quantization (PMQ), for {@code moe quantize --experts mixed}.
 *
 * <p>Design. Importance is what {@link RoutingStats#importance} gives: activation frequency × mean combine weight,
 * the share of a layer's routed output an expert carries. An expert quantized to b bits adds an error to that output
 * in proportion to its importance and to the error of its weights, and round-to-nearest's error per weight scales
 * with its step, 2^−b, so its squared error with 4^−b. The allocation minimises {@code Σ_e I_e · 4^−b_e} over each
 * MoE layer, subject to the layer's experts fitting in {@code averageBits} bits per expert weight. By default
 * ({@link Budget#STORED}) those are the bits actually stored, codes with their padding (an int3 word holds 30 bits of
 * codes in 32) and the group scales; {@link Budget#CODES} counts the widths alone, as PMQ's budget does. That is
 * PMQ's integer program (MC-MoE's released {@code precision_solver.py}, per MoE block), with these deviations: PMQ
 * weighs each width by the expert's measured quantization loss (GPTQ on calibration activations) where this uses
 * the 4^−b model of round-to-nearest; its significance is frequency^α · weight^β with β = 1.5 by default where this
 * uses the plain product the issue names (α = β = 1); and it requires at least one expert at each of its two widest
 * widths, which this does not.
 *
 * <p>The program is solved exactly, per layer (each layer gets the same budget, as in PMQ): a layer's routed experts
 * all have the same shapes, so a width costs every expert the same bytes, and for a given count of experts at each
 * width the best assignment gives the widest widths to the most important experts (the rearrangement inequality:
 * 4^−b falls as b grows). So the search is over the counts alone, every split of E experts over the widths (for four
 * widths, C(E + 3, 3): 2.8 million for 256 experts), each scored from prefix sums of the sorted importances. Ties
 * (a layer nobody was routed to) go to the split that uses more of the budget. Experts never routed to get a floor
 * of a millionth of the layer's largest importance, so that within a split they still rank below every routed one.
 *
 * <p>For the comparison the issue asks for, the same bit mix can be assigned without importance: {@code random}
 * keeps each layer's count at each width and deals the widths to its experts in a seeded random order;
 * {@code uniform-by-layer} deals the whole model's widths evenly over the layers (the same mix in every layer, to
 * within one expert per width) and then at random within each layer. Both spend the same bytes in total as the
 * importance plan.
 */
public final class MixedPrecision {

    /** What the bit budget counts. */
    public enum Budget {
        /** Every stored bit: codes with their padding, and the scales. */
        STORED,
        /** The widths alone, as PMQ counts them. */
        CODES;

        /** Parses "stored" or "codes". */
        public static Budget parse(String s) {
            try {
                return valueOf(s.trim().toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("unknown budget '" + s + "' (expected stored or codes)");
            }
        }
    }

    /** How widths are assigned to experts. */
    public enum Assignment {
        IMPORTANCE, RANDOM, UNIFORM_BY_LAYER;

        /** Parses "importance", "random" or "uniform-by-layer". */
        public static Assignment parse(String s) {
            try {
                return valueOf(s.trim().toUpperCase(Locale.ROOT).replace('-', '_'));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("unknown assignment '" + s + "' (expected importance, random or uniform-by-layer)");
            }
        }
    }

    /**
     * One routed expert's size: its projections' shapes ({rows, cols} each), the group size of the scales and their
     * dtype. Bytes at a width are the codes (packed rows, padding included) plus one scale per group per row.
     */
    public record ExpertShape(List<int[]> projections, int groupSize, DType scaleType) {
        public long weights() {
            long n = 0;
            for (int[] p : projections) n += (long) p[0] * p[1];
            return n;
        }

        public long bytes(int bits) {
            Quantization.Scheme scheme = TargetFormat.packedInt(bits) == TargetFormat.INT8 ? Quantization.Scheme.PACKED_INT8
                    : switch (bits) {
                        case 2 -> Quantization.Scheme.PACKED_INT2;
                        case 3 -> Quantization.Scheme.PACKED_INT3;
                        default -> Quantization.Scheme.PACKED_INT4;
                    };
            Quantization shape = new Quantization(scheme, MemorySegment.NULL, scaleType, 1, groupSize, null);
            long n = 0;
            for (int[] p : projections) n += p[0] * scheme.rowBytes(p[1]) + shape.scaleBytes(p[0], p[1]);
            return n;
        }
    }

    /**
     * The widths chosen: {@code bits[layer][expert]}, 0 for layers without routed experts; with the shape each
     * expert has, for the summary.
     */
    public record Plan(int[][] bits, ExpertShape shape) {
        /** Experts at each width, over all layers. */
        public TreeMap<Integer, Integer> histogram() {
            TreeMap<Integer, Integer> h = new TreeMap<>();
            for (int[] layer : bits) for (int b : layer) if (b > 0) h.merge(b, 1, Integer::sum);
            return h;
        }

        /** Experts at each width in one layer. */
        public TreeMap<Integer, Integer> histogram(int layer) {
            TreeMap<Integer, Integer> h = new TreeMap<>();
            for (int b : bits[layer]) if (b > 0) h.merge(b, 1, Integer::sum);
            return h;
        }

        /** Bytes of all routed experts' codes and scales. */
        public long bytes() {
            long n = 0;
            for (var e : histogram().entrySet()) n += e.getValue() * shape.bytes(e.getKey());
            return n;
        }

        public long weights() {
            return histogram().values().stream().mapToLong(Integer::longValue).sum() * shape.weights();
        }

        /** Bits per expert weight, codes only (the widths' mean). */
        public double averageCodeBits() {
            double n = 0;
            for (var e : histogram().entrySet()) n += (double) e.getKey() * e.getValue();
            return n / histogram().values().stream().mapToInt(Integer::intValue).sum();
        }

        /** Bits per expert weight as stored: codes with their padding, and the scales. */
        public double averageStoredBits() {
            return 8.0 * bytes() / weights();
        }
    }

    private MixedPrecision() {}

    /**
     * The plan for a model whose layer l has {@code importance[l]} (null or empty for layers without routed
     * experts), widths from {@code choices}, at most {@code averageBits} bits per expert weight as {@code budget}
     * counts them in every layer (importance) or in total (the other assignments, which keep the importance plan's
     * mix).
     */
    public static Plan plan(double[][] importance, ExpertShape shape, int[] choices, double averageBits, Budget budget,
                            Assignment assignment, long seed) {
        int[] widths = Arrays.stream(choices).distinct().sorted().toArray();
        if (widths.length == 0) throw new IllegalArgumentException("no bit widths to choose from");
        for (int b : widths) TargetFormat.packedInt(b);
        long[] cost = new long[widths.length];
        // Costs and budget in bits: stored bytes times 8, or the width times the weights.
        for (int i = 0; i < widths.length; i++) {
            cost[i] = budget == Budget.STORED ? 8 * shape.bytes(widths[i]) : (long) widths[i] * shape.weights();
        }
        int[][] bits = new int[importance.length][];
        for (int l = 0; l < importance.length; l++) {
            double[] imp = importance[l];
            if (imp == null || imp.length == 0) {
                bits[l] = new int[0];
                continue;
            }
            long bitBudget = (long) Math.floor(averageBits * shape.weights() * imp.length);
            if (cost[0] * imp.length > bitBudget) {
                throw new IllegalArgumentException(String.format(Locale.ROOT, "%.2f bits per expert weight cannot hold layer %d's"
                        + " experts even at %d bits: that takes %.3f bits per weight%s", averageBits, l, widths[0],
                        (double) cost[0] / shape.weights(), budget == Budget.STORED ? " with padding and scales" : ""));
            }
            bits[l] = layer(imp, widths, cost, bitBudget);
        }
        Plan byImportance = new Plan(bits, shape);
        return switch (assignment) {
            case IMPORTANCE -> byImportance;
            case RANDOM -> shuffled(bits, new Random(seed), shape);
            case UNIFORM_BY_LAYER -> uniform(byImportance, new Random(seed));
        };
    }

    /** The exact solution for one layer: the best split of its experts over the widths, widest to most important. */
    static int[] layer(double[] importance, int[] widths, long[] cost, long budget) {
        int n = importance.length;
        double max = Arrays.stream(importance).max().orElse(0);
        double floor = max > 0 ? max * 1e-6 : 1;
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) order[i] = i;
        double[] imp = new double[n];
        for (int i = 0; i < n; i++) imp[i] = Math.max(importance[i], floor);
        // Most important first; ties by expert index, so the plan does not depend on the sort.
        Arrays.sort(order, (a, b) -> imp[a] != imp[b] ? Double.compare(imp[b], imp[a]) : Integer.compare(a, b));
        double[] prefix = new double[n + 1];
        for (int i = 0; i < n; i++) prefix[i + 1] = prefix[i] + imp[order[i]];
        double[] loss = new double[widths.length];
        for (int i = 0; i < widths.length; i++) loss[i] = Math.pow(4, -widths[i]);
        Search s = new Search(n, widths.length, prefix, loss, cost, budget);
        s.visit(widths.length - 1, n, 0, 0, 0.0);
        if (s.bestBytes < 0) throw new IllegalArgumentException("no split of " + n + " experts fits " + budget + " bytes");
        int[] out = new int[n];
        int at = 0;
        for (int i = widths.length - 1; i >= 0; i--) {
            for (int k = 0; k < s.best[i]; k++) out[order[at++]] = widths[i];
        }
        return out;
    }

    /** Enumerates the counts per width, widest first: the widest widths take the first (most important) experts. */
    private static final class Search {
        final int[] counts;
        final int[] best;
        final double[] prefix;
        final double[] loss;
        final long[] cost;
        final long budget;
        final int n;
        double bestLoss = Double.POSITIVE_INFINITY;
        long bestBytes = -1;

        Search(int n, int widths, double[] prefix, double[] loss, long[] cost, long budget) {
            this.n = n;
            this.counts = new int[widths];
            this.best = new int[widths];
            this.prefix = prefix;
            this.loss = loss;
            this.cost = cost;
            this.budget = budget;
        }

        /** Width i takes some of the {@code left} experts from position {@code at}; narrower widths the rest. */
        void visit(int i, int left, int at, long bytes, double sum) {
            if (i == 0) {
                long total = bytes + left * cost[0];
                if (total > budget) return;
                double l = sum + loss[0] * (prefix[at + left] - prefix[at]);
                // Equal losses (up to rounding) go to the split that spends more of the budget.
                double tolerance = 1e-12 * Math.max(Math.abs(l), Math.abs(bestLoss == Double.POSITIVE_INFINITY ? 0 : bestLoss));
                if (l < bestLoss - tolerance || (Math.abs(l - bestLoss) <= tolerance && total > bestBytes)) {
                    bestLoss = l;
                    bestBytes = total;
                    counts[0] = left;
                    System.arraycopy(counts, 0, best, 0, counts.length);
                }
                return;
            }
            for (int k = 0; k <= left; k++) {
                long b = bytes + k * cost[i] + (left - k) * cost[0];
                if (b > budget) break; // more at this width only costs more
                counts[i] = k;
                visit(i - 1, left - k, at + k, bytes + k * cost[i], sum + loss[i] * (prefix[at + k] - prefix[at]));
            }
        }
    }

    /** Each layer's widths, dealt to its experts in a seeded random order. */
    private static Plan shuffled(int[][] bits, Random random, ExpertShape shape) {
        int[][] out = new int[bits.length][];
        for (int l = 0; l < bits.length; l++) {
            List<Integer> widths = new ArrayList<>();
            for (int b : bits[l]) widths.add(b);
            Collections.shuffle(widths, random);
            out[l] = widths.stream().mapToInt(Integer::intValue).toArray();
        }
        return new Plan(out, shape);
    }

    /** The model's widths, widest first, dealt round-robin over the layers, then shuffled within each layer. */
    private static Plan uniform(Plan plan, Random random) {
        int[][] bits = plan.bits();
        List<Integer> layers = new ArrayList<>();
        for (int l = 0; l < bits.length; l++) if (bits[l].length > 0) layers.add(l);
        List<Integer> all = new ArrayList<>();
        for (int[] layer : bits) for (int b : layer) all.add(b);
        all.sort(Collections.reverseOrder());
        int[][] out = new int[bits.length][];
        int[] filled = new int[bits.length];
        for (int l = 0; l < bits.length; l++) out[l] = new int[bits[l].length];
        int next = 0;
        for (int b : all) {
            // Round-robin over the layers that still have room (layers hold the same expert count in every family here).
            while (filled[layers.get(next % layers.size())] == out[layers.get(next % layers.size())].length) next++;
            int l = layers.get(next % layers.size());
            out[l][filled[l]++] = b;
            next++;
        }
        return shuffled(out, random, plan.shape());
    }
}
