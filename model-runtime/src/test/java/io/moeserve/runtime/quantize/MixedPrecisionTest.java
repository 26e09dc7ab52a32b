package io.moeserve.runtime.quantize;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.tensor.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The allocation of bit widths to experts: it keeps each layer within the byte budget (codes, padding and scales),
 * never gives an expert fewer bits than a less important one, is the optimum of its objective (checked against every
 * assignment of a small layer), and the assignments without importance keep the same bit mix.
 */
class MixedPrecisionTest {
    private static final int[] WIDTHS = {2, 3, 4, 8};
    /** gate and up [64, 96], down [96, 64], scales in BF16 per 32 columns. */
    private static final MixedPrecision.ExpertShape SHAPE = new MixedPrecision.ExpertShape(
            List.of(new int[] {64, 96}, new int[] {64, 96}, new int[] {96, 64}), 32, DType.BF16);

    private static MixedPrecision.Plan plan(double[][] importance, double averageBits, MixedPrecision.Assignment a, long seed) {
        return MixedPrecision.plan(importance, SHAPE, WIDTHS, averageBits, MixedPrecision.Budget.STORED, a, seed);
    }

    @Test
    void bytesCountCodesPaddingAndScales() {
        long weights = 3 * 64 * 96;
        assertEquals(weights, SHAPE.weights());
        // int3: 96 columns are 10 words (9.6 rounded up); 64 columns 7 words. Scales: 3 and 2 per row, 2 bytes each.
        long int3 = 2 * 64 * (10 * 4 + 3 * 2) + 96 * (7 * 4 + 2 * 2);
        assertEquals(int3, SHAPE.bytes(3));
        assertEquals(weights / 4 + 2 * 64 * 3 * 2 + 96 * 2 * 2, SHAPE.bytes(2));
        assertEquals(weights + 2 * 64 * 3 * 2 + 96 * 2 * 2, SHAPE.bytes(8));
    }

    @Test
    void layersStayInTheBudgetAndImportantExpertsGetAtLeastTheBitsOfLessImportantOnes() {
        Random random = new Random(3);
        double[][] importance = new double[4][];
        for (int l = 1; l < 4; l++) {
            importance[l] = new double[16];
            for (int e = 0; e < 16; e++) importance[l][e] = Math.pow(random.nextDouble(), 3);
        }
        importance[2][5] = 0; // never routed
        for (double average : new double[] {2.5, 3.0, 3.5, 5.0}) {
            MixedPrecision.Plan plan = plan(importance, average, MixedPrecision.Assignment.IMPORTANCE, 1);
            assertEquals(0, plan.bits()[0].length, "layer 0 has no routed experts");
            for (int l = 1; l < 4; l++) {
                int[] bits = plan.bits()[l];
                long bytes = 0;
                for (int b : bits) bytes += SHAPE.bytes(b);
                assertTrue(8.0 * bytes / (16 * SHAPE.weights()) <= average, "layer " + l + " over budget at " + average);
                for (int a = 0; a < 16; a++) {
                    for (int b = 0; b < 16; b++) {
                        if (importance[l][a] > importance[l][b]) {
                            assertTrue(bits[a] >= bits[b], "layer " + l + ": expert " + a + " is more important than " + b
                                    + " but has " + bits[a] + " bits against " + bits[b]);
                        }
                    }
                }
            }
            assertTrue(plan.averageStoredBits() <= average);
            assertTrue(plan.averageCodeBits() < plan.averageStoredBits(), "scales and padding cost bits");
            if (average == 3.0) assertTrue(plan.histogram().size() >= 2, "3 bits with scales is a mix: " + plan.histogram());
        }
    }

    @Test
    void aBudgetOfCodeBitsLeavesScalesAndPaddingOut() {
        double[][] importance = {{5, 4, 3, 2, 1, 0.5, 0.25, 0.125}};
        MixedPrecision.Plan codes = MixedPrecision.plan(importance, SHAPE, WIDTHS, 3.0, MixedPrecision.Budget.CODES,
                MixedPrecision.Assignment.IMPORTANCE, 1);
        MixedPrecision.Plan stored = plan(importance, 3.0, MixedPrecision.Assignment.IMPORTANCE, 1);
        assertTrue(codes.averageCodeBits() <= 3.0 && codes.averageStoredBits() > 3.0, codes.histogram().toString());
        assertTrue(stored.averageStoredBits() <= 3.0, stored.histogram().toString());
        assertTrue(codes.bytes() > stored.bytes(), "counting scales leaves fewer bits for codes");
    }

    @Test
    void theLayerSolutionIsTheBestOfEveryAssignment() {
        Random random = new Random(9);
        int[] widths = {2, 3, 4, 8};
        long[] cost = new long[widths.length];
        for (int i = 0; i < widths.length; i++) cost[i] = 8 * SHAPE.bytes(widths[i]);
        for (int trial = 0; trial < 20; trial++) {
            int n = 5;
            double[] importance = new double[n];
            for (int e = 0; e < n; e++) importance[e] = random.nextDouble();
            // From int2's 2.5 stored bits per weight (BF16 scales per 32 columns) to above int4's.
            long budget = (long) ((2.5 + 3 * random.nextDouble()) * SHAPE.weights() * n);
            int[] bits = MixedPrecision.layer(importance, widths, cost, budget);
            double best = Double.POSITIVE_INFINITY;
            for (int code = 0; code < 1 << (2 * n); code++) {
                long bytes = 0;
                double loss = 0;
                for (int e = 0; e < n; e++) {
                    int w = (code >> (2 * e)) & 3;
                    bytes += cost[w];
                    loss += importance[e] * Math.pow(4, -widths[w]);
                }
                if (bytes <= budget) best = Math.min(best, loss);
            }
            long bytes = 0;
            double loss = 0;
            for (int e = 0; e < n; e++) {
                bytes += 8 * SHAPE.bytes(bits[e]);
                loss += importance[e] * Math.pow(4, -bits[e]);
            }
            assertTrue(bytes <= budget, "trial " + trial + " over budget");
            assertEquals(best, loss, 1e-12 * best, "trial " + trial + ": not the best assignment");
        }
    }

    @Test
    void assignmentsWithoutImportanceKeepTheBitMix() {
        Random random = new Random(5);
        double[][] importance = new double[3][16];
        for (double[] layer : importance) for (int e = 0; e < 16; e++) layer[e] = random.nextDouble() * (e < 4 ? 10 : 1);
        MixedPrecision.Plan planned = plan(importance, 3.0, MixedPrecision.Assignment.IMPORTANCE, 1);
        MixedPrecision.Plan shuffled = plan(importance, 3.0, MixedPrecision.Assignment.RANDOM, 1);
        MixedPrecision.Plan uniform = plan(importance, 3.0, MixedPrecision.Assignment.UNIFORM_BY_LAYER, 1);
        assertEquals(planned.histogram(), shuffled.histogram());
        assertEquals(planned.histogram(), uniform.histogram());
        assertEquals(planned.bytes(), shuffled.bytes());
        assertEquals(planned.bytes(), uniform.bytes());
        boolean moved = false;
        for (int l = 0; l < 3; l++) {
            assertEquals(planned.histogram(l), shuffled.histogram(l), "random keeps each layer's mix");
            moved |= !java.util.Arrays.equals(planned.bits()[l], shuffled.bits()[l]);
            for (var e : uniform.histogram(l).entrySet()) {
                double share = planned.histogram().get(e.getKey()) / 3.0;
                assertTrue(Math.abs(e.getValue() - share) <= 1, "uniform-by-layer: layer " + l + " " + uniform.histogram(l));
            }
        }
        assertTrue(moved, "the random assignment is the importance one");
        MixedPrecision.Plan again = plan(importance, 3.0, MixedPrecision.Assignment.RANDOM, 1);
        for (int l = 0; l < 3; l++) assertArrayEquals(shuffled.bits()[l], again.bits()[l], "the seed fixes the assignment");
        MixedPrecision.Plan other = plan(importance, 3.0, MixedPrecision.Assignment.RANDOM, 2);
        assertNotEquals(java.util.Arrays.deepToString(shuffled.bits()), java.util.Arrays.deepToString(other.bits()));
    }

    @Test
    void aBudgetBelowTheNarrowestWidthIsRefused() {
        double[][] importance = {{1, 2, 3, 4}};
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> plan(importance, 2.0, MixedPrecision.Assignment.IMPORTANCE, 1));
        assertTrue(e.getMessage().contains("at 2 bits"), e.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> MixedPrecision.plan(importance, SHAPE, new int[] {2, 5}, 4.0, MixedPrecision.Budget.STORED,
                        MixedPrecision.Assignment.IMPORTANCE, 1), "5 bits is no packed width");
    }

    @Test
    void routingStatisticsFileRoundTripsAndImportanceIsFrequencyTimesMeanWeight(@TempDir Path tmp) throws IOException {
        Path file = tmp.resolve("stats.json");
        Files.writeString(file, """
                {"layers": [{"layer": 1, "experts": [{"expert": 0, "count": 30, "mean_weight": 0.5},
                                                     {"expert": 2, "count": 10, "mean_weight": 0.9}]}]}""");
        RoutingStats stats = RoutingStats.read(file, 2, 3);
        assertArrayEquals(new double[] {0.75 * 0.5, 0, 0.25 * 0.9}, stats.importance(1), 1e-15);
        assertArrayEquals(new double[3], stats.importance(0));
        Path copy = tmp.resolve("copy.json");
        stats.write(copy);
        RoutingStats back = RoutingStats.read(copy, 2, 3);
        for (int e = 0; e < 3; e++) {
            assertEquals(stats.count(1, e), back.count(1, e));
            assertEquals(stats.meanWeight(1, e), back.meanWeight(1, e), 1e-15);
        }
        Files.writeString(file, "{\"layers\": [{\"layer\": 1, \"experts\": [{\"expert\": 3, \"count\": 1, \"mean_weight\": 1}]}]}");
        assertArrayEquals(new double[3], RoutingStats.read(file, 2, 3).importance(1), "expert 3 of 3 (a MoE++ constant expert) is skipped");
        Files.writeString(file, "{\"layers\": [{\"layer\": 2, \"experts\": [{\"expert\": 0, \"count\": 1, \"mean_weight\": 1}]}]}");
        assertThrows(IllegalArgumentException.class, () -> RoutingStats.read(file, 2, 3), "layer 2 of 2");
        Files.writeString(file, "{\"layers\": [{\"layer\": 1, \"experts\": [{\"expert\": 0, \"count\": -1, \"mean_weight\": 1}]}]}");
        assertThrows(IllegalArgumentException.class, () -> RoutingStats.read(file, 2, 3), "a negative count");
    }
}
