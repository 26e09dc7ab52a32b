package io.moeserve.planner;

import java.util.Arrays;
import java.util.BitSet;

/**
 * What each expert group hosts, per MoE layer: {@code experts[l][g]} lists the experts of layer l that group g hosts
 * (its "slots"; every pod of the group holds all of them). A group is a Deployment whose replicas are identical, so
 * the same index g names the same group in every layer.
 *
 * <p>Load model. The router sends a pair (token, expert) to one of the groups hosting the expert, spreading the pairs
 * of a call over the candidates (PartitionedExpertExecutor), and within a group to one replica. The planner models
 * that as an equal split: expert e of layer l hosted by c groups adds {@code w/c} to each of them. A group listing
 * the same expert twice hosts it once. This is EPLB's own per-replica model whenever no GPU of an EPLB plan holds two
 * replicas of one expert, so EPLB plans and ours are scored by the same yardstick.
 */
public record Placement(int[][][] experts) {

    public int layers() {
        return experts.length;
    }

    public int groups() {
        return experts[0].length;
    }

    /** {@code load[l][g]}: the load group g carries in layer l. */
    public double[][] loads(double[][] weight) {
        double[][] out = new double[layers()][];
        for (int l = 0; l < layers(); l++) out[l] = layerLoads(experts[l], weight[l]);
        return out;
    }

    static double[] layerLoads(int[][] layer, double[] w) {
        int[] count = hostCount(layer, w.length);
        double[] load = new double[layer.length];
        for (int g = 0; g < layer.length; g++) {
            BitSet seen = new BitSet();
            for (int e : layer[g]) {
                if (seen.get(e)) continue;
                seen.set(e);
                load[g] += w[e] / count[e];
            }
        }
        return load;
    }

    /** How many distinct groups host each expert of one layer. */
    static int[] hostCount(int[][] layer, int experts) {
        int[] count = new int[experts];
        for (int[] group : layer) {
            BitSet seen = new BitSet();
            for (int e : group) {
                if (!seen.get(e)) count[e]++;
                seen.set(e);
            }
        }
        return count;
    }

    /** The largest per-group load of each layer. */
    public double[] maxLoads(double[][] weight) {
        double[][] loads = loads(weight);
        double[] out = new double[loads.length];
        for (int l = 0; l < loads.length; l++) out[l] = Arrays.stream(loads[l]).max().orElse(0);
        return out;
    }

    /**
     * The balance figure of a plan: mean over layers of max group load ÷ mean group load (1.0 is perfect). Layers
     * without load count as balanced.
     */
    public double imbalance(double[][] weight) {
        double[][] loads = loads(weight);
        double sum = 0;
        for (double[] layer : loads) {
            double total = Arrays.stream(layer).sum();
            double max = Arrays.stream(layer).max().orElse(0);
            sum += total <= 0 ? 1.0 : max / (total / layer.length);
        }
        return sum / loads.length;
    }

    /**
     * Moves from {@code previous} to this plan: (layer, expert) weights a group must load that it did not hold,
     * summed over groups and layers. Groups beyond the previous plan's count load everything they host.
     */
    public int movesFrom(Placement previous) {
        int moves = 0;
        for (int l = 0; l < layers(); l++) {
            for (int g = 0; g < groups(); g++) {
                int[] before = previous != null && l < previous.layers() && g < previous.groups() ? previous.experts[l][g] : new int[0];
                moves += added(before, experts[l][g]);
            }
        }
        return moves;
    }

    /** How many groups changed what they host (each such group's Deployment rolls). */
    public int groupsChangedFrom(Placement previous) {
        int changed = 0;
        for (int g = 0; g < groups(); g++) {
            for (int l = 0; l < layers(); l++) {
                int[] before = previous != null && g < previous.groups() ? previous.experts[l][g] : new int[0];
                if (!distinct(before).equals(distinct(experts[l][g]))) {
                    changed++;
                    break;
                }
            }
        }
        return changed;
    }

    static int added(int[] before, int[] after) {
        BitSet b = distinct(before);
        BitSet a = distinct(after);
        a.andNot(b);
        return a.cardinality();
    }

    static BitSet distinct(int[] experts) {
        BitSet s = new BitSet();
        for (int e : experts) s.set(e);
        return s;
    }

    /** Checks that every expert of every layer is hosted by some group. */
    public void checkCoverage(int numExperts) {
        for (int l = 0; l < layers(); l++) {
            int[] count = hostCount(experts[l], numExperts);
            for (int e = 0; e < numExperts; e++) {
                if (count[e] == 0) throw new IllegalStateException("expert " + e + " of MoE layer index " + l + " is hosted by no group");
            }
        }
    }

    public Placement copy() {
        int[][][] c = new int[layers()][][];
        for (int l = 0; l < layers(); l++) {
            c[l] = new int[groups()][];
            for (int g = 0; g < groups(); g++) c[l][g] = experts[l][g].clone();
        }
        return new Placement(c);
    }
}
