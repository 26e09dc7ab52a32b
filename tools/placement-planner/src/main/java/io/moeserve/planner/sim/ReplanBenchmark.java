package io.moeserve.planner.sim;

import io.moeserve.planner.Placement;
import io.moeserve.planner.StablePlanner;

/**
 * Successive plans for slowly drifting load, as a deployment would make them (one replan per interval, each from
 * the last interval's load): EPLB from scratch (as upstream numbers its groups), EPLB with its groups matched to the
 * previous plan's, and the migration-aware planner with and without slack. Reports balance and moves.
 */
public final class ReplanBenchmark {
    public record Scenario(int layers, int experts, int topK, double zipf, double driftSigma, double driftHours, int groups, int slots,
                         int replans, double intervalHours, double slack, long seed) {
        public static Scenario defaults() {
            return new Scenario(24, 64, 6, 0.9, 1.0, 12, 9, 8, 24, 1.0, 0.02, 20261202L);
        }
    }

    /** Mean over replans (the first plan excluded from moves) of each variant. */
    public record Row(String variant, double meanImbalance, double worstImbalance, double meanMaxLoadVsEplb,
                      double worstMaxLoadVsEplb, double meanMoves, double meanMovesFraction, double meanGroupsChanged) {}

    public static Row[] run(Scenario c) {
        SkewedLoad load = new SkewedLoad(c.layers(), c.experts(), c.topK(), c.zipf(), c.driftSigma(), c.driftHours(), c.seed());
        StablePlanner.Options base = StablePlanner.Options.global(c.groups(), c.slots());
        String[] names = {"EPLB (from scratch)", "EPLB, groups matched to the previous plan", "migration-aware, slack 0",
                "migration-aware, slack " + c.slack()};
        Placement[] prev = new Placement[4];
        double[][] acc = new double[4][7];
        double[] worstImb = new double[4], worstRatio = new double[4];
        int counted = 0;
        int slotsPerLayer = c.groups() * c.slots();
        for (int r = 0; r <= c.replans(); r++) {
            double[][] w = load.shares();
            for (double[] row : w) for (int e = 0; e < row.length; e++) row[e] *= 1000.0;
            StablePlanner.Outcome strict = StablePlanner.plan(w, base, prev[2]);
            StablePlanner.Outcome loose = StablePlanner.plan(w, base.withSlack(c.slack()), prev[3]);
            Placement eplb = strict.eplb();
            Placement matched = StablePlanner.relabel(eplb, prev[1]);
            Placement[] now = {eplb, matched, strict.placement(), loose.placement()};
            double[] eplbMax = eplb.maxLoads(w);
            for (int v = 0; v < 4; v++) {
                double imb = now[v].imbalance(w);
                double[] m = now[v].maxLoads(w);
                double ratio = 0, worst = 0;
                for (int l = 0; l < m.length; l++) {
                    ratio += m[l] / eplbMax[l];
                    worst = Math.max(worst, m[l] / eplbMax[l]);
                }
                ratio /= m.length;
                worstImb[v] = Math.max(worstImb[v], imb);
                worstRatio[v] = Math.max(worstRatio[v], worst);
                if (r > 0) {
                    int moves = now[v].movesFrom(prev[v]);
                    acc[v][0] += imb;
                    acc[v][1] += ratio;
                    acc[v][2] += moves;
                    acc[v][3] += moves / (double) (slotsPerLayer * c.layers());
                    acc[v][4] += now[v].groupsChangedFrom(prev[v]);
                }
                prev[v] = now[v];
            }
            if (r > 0) counted++;
            load.advance(c.intervalHours() * 3600);
        }
        Row[] rows = new Row[4];
        for (int v = 0; v < 4; v++) {
            rows[v] = new Row(names[v], acc[v][0] / counted, worstImb[v], acc[v][1] / counted, worstRatio[v],
                    acc[v][2] / counted, acc[v][3] / counted, acc[v][4] / counted);
        }
        return rows;
    }
}
