package io.moeserve.planner;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * DeepSeek's Expert Parallelism Load Balancer (deepseek-ai/EPLB, {@code rebalance_experts}), reimplemented from its
 * specification: the baseline every other plan is measured against.
 *
 * <p>Inputs: {@code weight[L][E]} (estimated load of each logical expert of each MoE layer), {@code R} physical
 * expert slots per layer, {@code G} expert groups (for group-limited routing; E % G == 0), {@code N} nodes and
 * {@code P} GPUs (R % P == 0, P % N == 0). When G % N == 0 the hierarchical policy runs (groups packed onto nodes,
 * then replication inside each node); otherwise the global one, which is the hierarchical policy with one group and
 * one node.
 *
 * <p>Two primitives. <em>Balanced packing</em> puts n weighted items into m bins of exactly n/m items: items in
 * descending weight (ties: lower index first), each into the non-full bin with the smallest total (ties: lowest
 * bin). <em>Replication</em> gives slots 0..m-1 to experts 0..m-1 and each further slot to the expert with the largest
 * per-replica load weight/count (ties: lowest index). Physical slot numbering: {@code node·(R/N) + gpuInNode·(R/P) +
 * rankInGpu}, so GPU g owns slots [g·R/P, (g+1)·R/P).
 *
 * <p>Outputs as upstream: {@code phy2log[L][R]}, {@code logcnt[L][E]} and {@code log2phy[L][E][maxcnt]} (−1 padded;
 * entry k is the slot holding replica k). The README example (2 × 12 experts, R=16, G=4, N=2, P=8) is reproduced bit
 * for bit by {@code EplbTest}.
 */
public final class Eplb {
    private Eplb() {}

    /** The result of {@link #rebalance}. */
    public record Result(int[][] phy2log, int[][] logcnt, int[][][] log2phy, int numGpus) {
        /** Slots per GPU. */
        public int slotsPerGpu() {
            return phy2log[0].length / numGpus;
        }

        /** The plan as a placement: GPU g of layer l hosts the experts in its slots. */
        public Placement toPlacement() {
            int layers = phy2log.length, s = slotsPerGpu();
            int[][][] p = new int[layers][numGpus][];
            for (int l = 0; l < layers; l++) {
                for (int g = 0; g < numGpus; g++) p[l][g] = Arrays.copyOfRange(phy2log[l], g * s, (g + 1) * s);
            }
            return new Placement(p);
        }
    }

    /** {@code rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus)}. */
    public static Result rebalance(double[][] weight, int numReplicas, int numGroups, int numNodes, int numGpus) {
        int layers = weight.length;
        if (layers == 0) throw new IllegalArgumentException("no MoE layers in the load");
        int experts = weight[0].length;
        for (double[] w : weight) {
            if (w.length != experts) throw new IllegalArgumentException("every layer needs the same number of experts");
        }
        if (numGpus <= 0 || numNodes <= 0 || numGroups <= 0) throw new IllegalArgumentException("counts must be positive");
        if (numReplicas < experts) {
            throw new IllegalArgumentException("physical slots (" + numReplicas + ") fewer than experts (" + experts + ")");
        }
        if (numReplicas % numGpus != 0) {
            throw new IllegalArgumentException("physical slots (" + numReplicas + ") must divide evenly over " + numGpus + " GPUs");
        }
        if (numGroups % numNodes == 0) {
            return hierarchical(weight, numReplicas, numGroups, numNodes, numGpus);
        }
        return hierarchical(weight, numReplicas, 1, 1, numGpus);
    }

    /** Balanced packing: {@code pack[i]} is item i's bin, {@code rank[i]} its position inside the bin. */
    record Packing(int[] pack, int[] rank) {}

    static Packing balancedPacking(double[] weight, int numPacks) {
        int n = weight.length;
        if (n % numPacks != 0) throw new IllegalArgumentException(n + " items do not fill " + numPacks + " bins evenly");
        int perPack = n / numPacks;
        int[] pack = new int[n], rank = new int[n];
        if (perPack == 1) {
            for (int i = 0; i < n; i++) pack[i] = i;
            return new Packing(pack, rank);
        }
        double[] packWeight = new double[numPacks];
        int[] packItems = new int[numPacks];
        for (int i : descending(weight)) {
            int best = -1;
            for (int b = 0; b < numPacks; b++) {
                if (packItems[b] < perPack && (best < 0 || packWeight[b] < packWeight[best])) best = b;
            }
            pack[i] = best;
            rank[i] = packItems[best];
            packWeight[best] += weight[i];
            packItems[best]++;
        }
        return new Packing(pack, rank);
    }

    /** Replication: {@code phy2log[s]}, {@code rank[s]} (replica number) and {@code count[e]}. */
    record Replication(int[] phy2log, int[] rank, int[] count) {}

    static Replication replicate(double[] weight, int numPhysical) {
        int m = weight.length;
        int[] phy2log = new int[numPhysical], rank = new int[numPhysical], count = new int[m];
        for (int i = 0; i < m; i++) {
            phy2log[i] = i;
            count[i] = 1;
        }
        for (int s = m; s < numPhysical; s++) {
            int best = 0;
            for (int e = 1; e < m; e++) if (weight[e] / count[e] > weight[best] / count[best]) best = e;
            phy2log[s] = best;
            rank[s] = count[best];
            count[best]++;
        }
        return new Replication(phy2log, rank, count);
    }

    private static Result hierarchical(double[][] weight, int numPhysical, int numGroups, int numNodes, int numGpus) {
        int layers = weight.length, experts = weight[0].length;
        if (experts % numGroups != 0) {
            throw new IllegalArgumentException(experts + " experts do not split into " + numGroups + " groups");
        }
        if (numGroups % numNodes != 0 || numGpus % numNodes != 0 || numPhysical % numNodes != 0) {
            throw new IllegalArgumentException("groups, GPUs and slots must divide evenly over the nodes");
        }
        int groupSize = experts / numGroups;
        int groupsPerNode = numGroups / numNodes;
        int expertsPerNode = experts / numNodes;
        int slotsPerNode = numPhysical / numNodes;
        int gpusPerNode = numGpus / numNodes;
        int slotsPerGpu = numPhysical / numGpus;

        int[][] phy2log = new int[layers][numPhysical];
        int[][] phyRank = new int[layers][numPhysical];
        int[][] logcnt = new int[layers][experts];
        for (int l = 0; l < layers; l++) {
            double[] w = weight[l];
            // 1. groups -> nodes
            double[] groupLoad = new double[numGroups];
            for (int e = 0; e < experts; e++) groupLoad[e / groupSize] += w[e];
            Packing groups = balancedPacking(groupLoad, numNodes);
            // 2. node-local expert order: groups by their slot in the node, experts in original order
            int[] local2log = new int[experts];
            for (int g = 0; g < numGroups; g++) {
                int base = groups.pack()[g] * expertsPerNode + groups.rank()[g] * groupSize;
                for (int j = 0; j < groupSize; j++) local2log[base + j] = g * groupSize + j;
            }
            for (int node = 0; node < numNodes; node++) {
                double[] nodeLoad = new double[expertsPerNode];
                for (int j = 0; j < expertsPerNode; j++) nodeLoad[j] = w[local2log[node * expertsPerNode + j]];
                // 3. replicate inside the node
                Replication rep = replicate(nodeLoad, slotsPerNode);
                // 4. replicas -> GPUs of the node
                double[] replicaWeight = new double[slotsPerNode];
                for (int s = 0; s < slotsPerNode; s++) replicaWeight[s] = nodeLoad[rep.phy2log()[s]] / rep.count()[rep.phy2log()[s]];
                Packing gpus = balancedPacking(replicaWeight, gpusPerNode);
                for (int s = 0; s < slotsPerNode; s++) {
                    // 5. numbering
                    int slot = node * slotsPerNode + gpus.pack()[s] * slotsPerGpu + gpus.rank()[s];
                    int logical = local2log[node * expertsPerNode + rep.phy2log()[s]];
                    phy2log[l][slot] = logical;
                    phyRank[l][slot] = rep.rank()[s];
                }
                for (int j = 0; j < expertsPerNode; j++) logcnt[l][local2log[node * expertsPerNode + j]] = rep.count()[j];
            }
        }
        int maxCount = 0;
        for (int[] c : logcnt) for (int v : c) maxCount = Math.max(maxCount, v);
        int[][][] log2phy = new int[layers][experts][maxCount];
        for (int l = 0; l < layers; l++) {
            for (int[] row : log2phy[l]) Arrays.fill(row, -1);
            for (int s = 0; s < numPhysical; s++) log2phy[l][phy2log[l][s]][phyRank[l][s]] = s;
        }
        return new Result(phy2log, logcnt, log2phy, numGpus);
    }

    /** Indices by descending weight; equal weights keep index order. */
    private static List<Integer> descending(double[] weight) {
        List<Integer> order = new ArrayList<>(weight.length);
        for (int i = 0; i < weight.length; i++) order.add(i);
        order.sort(Comparator.comparingDouble((Integer i) -> -weight[i]));
        return order;
    }
}
