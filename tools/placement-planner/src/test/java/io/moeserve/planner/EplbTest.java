package io.moeserve.planner;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** EPLB reimplemented to its specification: the README example, bit for bit, and the primitives' tie rules. */
class EplbTest {
    static final double[][] README_WEIGHT = {
            {90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86},
            {20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27}};

    @Test
    void reproducesTheReadmeExample() {
        Eplb.Result r = Eplb.rebalance(README_WEIGHT, 16, 4, 2, 8);
        assertArrayEquals(new int[]{5, 6, 5, 7, 8, 4, 3, 4, 10, 9, 10, 2, 0, 1, 11, 1}, r.phy2log()[0]);
        assertArrayEquals(new int[]{7, 10, 6, 8, 6, 11, 8, 9, 2, 4, 5, 1, 5, 0, 3, 1}, r.phy2log()[1]);
        // replica counts and the inverse map agree with phy2log
        for (int l = 0; l < 2; l++) {
            int[] count = new int[12];
            for (int e : r.phy2log()[l]) count[e]++;
            assertArrayEquals(count, r.logcnt()[l]);
            for (int e = 0; e < 12; e++) {
                for (int k = 0; k < r.log2phy()[l][e].length; k++) {
                    int slot = r.log2phy()[l][e][k];
                    if (k < count[e]) assertEquals(e, r.phy2log()[l][slot]);
                    else assertEquals(-1, slot);
                }
            }
        }
    }

    @Test
    void readmeExampleBalanceFigures() {
        // per-GPU max/mean of the README plan: 1.21 (layer 0) and 1.24 (layer 1), as the research notes state
        Placement p = Eplb.rebalance(README_WEIGHT, 16, 4, 2, 8).toPlacement();
        double[][] loads = p.loads(README_WEIGHT);
        double[] expected = {1.21, 1.24};
        for (int l = 0; l < 2; l++) {
            double max = 0, sum = 0;
            for (double v : loads[l]) {
                max = Math.max(max, v);
                sum += v;
            }
            assertEquals(expected[l], max / (sum / loads[l].length), 0.005);
        }
    }

    @Test
    void globalPolicyWhenGroupsDoNotDivideIntoNodes() {
        double[][] w = {{10, 1, 1, 1, 1, 1}};
        Eplb.Result r = Eplb.rebalance(w, 8, 3, 2, 4);
        // global: the two extra slots both go to the hot expert (10/1 > 1/1, then 10/2 > 1/1)
        assertArrayEquals(new int[]{3, 1, 1, 1, 1, 1}, r.logcnt()[0]);
    }

    @Test
    void packingTiesGoToTheLowestBinAndItemsKeepIndexOrder() {
        Eplb.Packing p = Eplb.balancedPacking(new double[]{5, 5, 5, 5}, 2);
        assertArrayEquals(new int[]{0, 1, 0, 1}, p.pack());
        assertArrayEquals(new int[]{0, 0, 1, 1}, p.rank());
    }

    @Test
    void replicationPicksTheLargestPerReplicaLoadLowestIndexOnTies() {
        Eplb.Replication r = Eplb.replicate(new double[]{4, 4, 1}, 5);
        assertArrayEquals(new int[]{0, 1, 2, 0, 1}, r.phy2log());
        assertArrayEquals(new int[]{0, 0, 0, 1, 1}, r.rank());
        assertArrayEquals(new int[]{2, 2, 1}, r.count());
    }

    @Test
    void rejectsShapesTheAlgorithmCannotServe() {
        assertThrows(IllegalArgumentException.class, () -> Eplb.rebalance(README_WEIGHT, 10, 4, 2, 8));
        assertThrows(IllegalArgumentException.class, () -> Eplb.rebalance(README_WEIGHT, 18, 4, 2, 8));
    }
}
