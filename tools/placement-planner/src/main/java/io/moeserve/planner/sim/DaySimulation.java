package io.moeserve.planner.sim;

import io.moeserve.planner.Placement;
import io.moeserve.planner.StablePlanner;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A day of skewed expert load, served by expert groups whose replica counts an HPA controls, compared with uniform
 * replication. Deterministic for a seed.
 *
 * <p>Load: tokens/s follow a daily cycle (trough at 04:00 of {@code troughFraction}·peak, peak at 16:00) with
 * minute-scale noise; each token sends k (token, expert) pairs to every MoE layer, spread over the experts by
 * {@link SkewedLoad} (Zipf by rank, ranks drifting). A group's load is the sum of its experts' pairs (an expert in
 * several groups split evenly), spread evenly over its ready pods (the router picks replicas by outstanding work).
 *
 * <p>Pods: a pod computes {@code podPairsPerSecond} pairs per second when busy all the time; its utilisation is its
 * load ÷ that, and the metric the HPA sees is that utilisation capped at 1 (a busy-seconds rate cannot exceed 1)
 * averaged over the Prometheus rate window. A new pod serves after {@code startupSeconds} (weights load) and reports
 * a metric a half rate window after that; a removed pod stops at once (its drain is covered by the grace period).
 *
 * <p>Latency: a layer call to a pod at utilisation ρ takes the unloaded time ÷ (1 − ρ) (a single queue), and a
 * token's layer step waits for the slowest group, so per-token latency stays under {@code latencyFactor} × the
 * unloaded time exactly while every group stays at or under ρ* = 1 − 1/latencyFactor. Tokens served while some group
 * is above ρ* (or has no ready pod) count as late.
 *
 * <p>Strategies, all over the same load: HPA per group on the chart's default layout (contiguous expert ids,
 * {@code *:a-b}); uniform replication under one HPA driven by the busiest group (every group the same count); HPA per
 * group and uniform replication on the planner's layout (planned once from the first hour, so the drift unbalances
 * it as the day goes on); and both static layouts provisioned for the day's peak. For each, targets from a grid are tried and the cheapest that
 * keeps late tokens within the budget wins.
 */
public final class DaySimulation {

    public record Scenario(int layers, int experts, int topK, double zipf, double driftSigma, double driftHours, int groups,
                         int plannedGroups, int plannedSlots, double peakTokensPerSecond, double troughFraction,
                         double podPairsPerSecond, int startupSeconds, double latencyFactor, double lateBudget,
                         int syncSeconds, int rateWindowSeconds, double tolerance, int maxReplicas, double[] targets,
                         long seed) {
        public static Scenario defaults() {
            return new Scenario(24, 64, 6, 0.9, 1.0, 12, 8, 9, 8, 5000, 0.15, 20000, 120, 5, 0.001, 15, 60, 0.1, 64,
                    new double[]{0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70, 0.75}, 20261202L);
        }

        public double maxUtilisation() {
            return 1 - 1 / latencyFactor;
        }
    }

    public enum Strategy {
        PER_GROUP_HPA("HPA per group, contiguous layout"),
        UNIFORM_HPA("uniform replication, one HPA on the busiest group"),
        PLANNED_PER_GROUP_HPA("HPA per group, planner's layout"),
        PLANNED_UNIFORM_HPA("uniform replication, planner's layout, one HPA on the busiest group"),
        STATIC_UNIFORM("uniform replication, static for the peak"),
        STATIC_PER_GROUP("per group, static for the peak");

        public final String label;

        Strategy(String label) {
            this.label = label;
        }
    }

    /** One run: pod-hours, late tokens, and the total pods at every sync. */
    public record Run(Strategy strategy, double target, double podHours, double lateFraction, int[] totalPods, int peakPods) {}

    /** Precomputed load: tokens/s and each group's pairs/s at every sync, for both layouts. */
    public record Day(double[] tokensPerSecond, double[][] contiguous, double[][] planned) {}

    private final Scenario c;

    public DaySimulation(Scenario c) {
        this.c = c;
        if (c.experts() % c.groups() != 0) throw new IllegalArgumentException("experts must split evenly into the groups");
    }

    public Day day() {
        int steps = 86400 / c.syncSeconds();
        SkewedLoad load = new SkewedLoad(c.layers(), c.experts(), c.topK(), c.zipf(), c.driftSigma(), c.driftHours(), c.seed());
        SplittableRandom noise = new SplittableRandom(c.seed() ^ 0x5DEECE66DL);
        Placement contiguous = contiguous();
        double[] tps = new double[steps];
        double[][][] shares = new double[steps][][];
        double ar = 0;
        for (int i = 0; i < steps; i++) {
            double t = i * (double) c.syncSeconds();
            double phase = 2 * Math.PI * (t - 4 * 3600) / 86400.0;
            double cycle = c.troughFraction() + (1 - c.troughFraction()) * (0.5 - 0.5 * Math.cos(phase));
            if (i % Math.max(1, 60 / c.syncSeconds()) == 0) ar = 0.8 * ar + 0.6 * 0.05 * (noise.nextDouble() * 2 - 1) * Math.sqrt(3);
            tps[i] = c.peakTokensPerSecond() * cycle * (1 + ar);
            shares[i] = load.shares();
            load.advance(c.syncSeconds());
        }
        // plan once from the first hour's mean load
        int hour = 3600 / c.syncSeconds();
        double[][] w = new double[c.layers()][c.experts()];
        for (int i = 0; i < hour; i++) {
            for (int l = 0; l < c.layers(); l++) {
                for (int e = 0; e < c.experts(); e++) w[l][e] += tps[i] * c.topK() * shares[i][l][e] / hour;
            }
        }
        StablePlanner.Outcome plan = StablePlanner.plan(w, StablePlanner.Options.global(c.plannedGroups(), c.plannedSlots()), null);
        Placement planned = plan.placement();
        double[][] gc = new double[steps][], gp = new double[steps][];
        for (int i = 0; i < steps; i++) {
            double[][] pairs = new double[c.layers()][c.experts()];
            for (int l = 0; l < c.layers(); l++) for (int e = 0; e < c.experts(); e++) pairs[l][e] = tps[i] * c.topK() * shares[i][l][e];
            gc[i] = groupTotals(contiguous, pairs);
            gp[i] = groupTotals(planned, pairs);
        }
        return new Day(tps, gc, gp);
    }

    /** Group g hosts experts [g·E/G, (g+1)·E/G) of every layer: the chart's default layout. */
    Placement contiguous() {
        int per = c.experts() / c.groups();
        int[][][] p = new int[c.layers()][c.groups()][];
        for (int l = 0; l < c.layers(); l++) {
            for (int g = 0; g < c.groups(); g++) {
                int[] e = new int[per];
                for (int j = 0; j < per; j++) e[j] = g * per + j;
                p[l][g] = e;
            }
        }
        return new Placement(p);
    }

    private static double[] groupTotals(Placement p, double[][] pairs) {
        double[][] per = p.loads(pairs);
        double[] sum = new double[p.groups()];
        for (double[] layer : per) for (int g = 0; g < sum.length; g++) sum[g] += layer[g];
        return sum;
    }

    public Run run(Day day, Strategy s, double target) {
        boolean planned = s == Strategy.PLANNED_PER_GROUP_HPA || s == Strategy.PLANNED_UNIFORM_HPA;
        double[][] loads = planned ? day.planned() : day.contiguous();
        int steps = loads.length, groups = loads[0].length, dt = c.syncSeconds();
        int window = Math.max(1, c.rateWindowSeconds() / dt);
        double rhoMax = c.maxUtilisation();
        int[] replicas = new int[groups];
        for (int g = 0; g < groups; g++) replicas[g] = needed(loads[0][g], target);
        if (s == Strategy.STATIC_PER_GROUP || s == Strategy.STATIC_UNIFORM) {
            Arrays.fill(replicas, 0);
            for (double[] step : loads) for (int g = 0; g < groups; g++) replicas[g] = Math.max(replicas[g], needed(step[g], target));
        }
        if (s == Strategy.UNIFORM_HPA || s == Strategy.PLANNED_UNIFORM_HPA || s == Strategy.STATIC_UNIFORM) Arrays.fill(replicas,
                Arrays.stream(replicas).max().orElse(1));
        // pods: ready-at times per group
        List<List<Double>> pods = new ArrayList<>();
        for (int g = 0; g < groups; g++) {
            List<Double> list = new ArrayList<>();
            for (int r = 0; r < replicas[g]; r++) list.add(-1e9);
            pods.add(list);
        }
        Hpa[] hpa = new Hpa[groups];
        for (int g = 0; g < groups; g++) hpa[g] = new Hpa(1, c.maxReplicas(), target, c.tolerance(), Hpa.Behavior.kubernetesDefault());
        double[][] util = new double[groups][window];
        double podSeconds = 0, late = 0, total = 0;
        int[] totalPods = new int[steps];
        int peak = 0;
        for (int i = 0; i < steps; i++) {
            double now = (double) i * dt;
            boolean anyLate = false;
            int podsNow = 0;
            for (int g = 0; g < groups; g++) {
                int ready = 0;
                for (double at : pods.get(g)) if (at <= now) ready++;
                double rho = ready == 0 ? Double.POSITIVE_INFINITY : loads[i][g] / (ready * c.podPairsPerSecond());
                if (rho > rhoMax) anyLate = true;
                util[g][i % window] = Math.min(1.0, rho);
                podsNow += pods.get(g).size();
            }
            podSeconds += (double) podsNow * dt;
            total += day.tokensPerSecond()[i] * dt;
            if (anyLate) late += day.tokensPerSecond()[i] * dt;
            totalPods[i] = podsNow;
            peak = Math.max(peak, podsNow);
            if (s == Strategy.STATIC_PER_GROUP || s == Strategy.STATIC_UNIFORM) continue;
            int seen = Math.min(i + 1, window);
            if (s == Strategy.UNIFORM_HPA || s == Strategy.PLANNED_UNIFORM_HPA) {
                int busiest = 0;
                double worst = -1;
                for (int g = 0; g < groups; g++) {
                    double m = mean(util[g], seen);
                    if (m > worst) {
                        worst = m;
                        busiest = g;
                    }
                }
                int[] rep = reporting(pods.get(busiest), now);
                int next = hpa[0].sync(now, pods.get(busiest).size(), fill(rep[0], worst), rep[1]);
                for (int g = 0; g < groups; g++) resize(pods.get(g), next, now);
            } else {
                for (int g = 0; g < groups; g++) {
                    int[] rep = reporting(pods.get(g), now);
                    int next = hpa[g].sync(now, pods.get(g).size(), fill(rep[0], mean(util[g], seen)), rep[1]);
                    resize(pods.get(g), next, now);
                }
            }
        }
        return new Run(s, target, podSeconds / 3600, total > 0 ? late / total : 0, totalPods, peak);
    }

    /** The cheapest run over the target grid that keeps late tokens within the budget (null if none does). */
    public Run best(Day day, Strategy s) {
        Run best = null;
        for (double t : c.targets()) {
            Run r = run(day, s, t);
            if (r.lateFraction() <= c.lateBudget() && (best == null || r.podHours() < best.podHours())) best = r;
        }
        return best;
    }

    private int needed(double load, double target) {
        return Math.max(1, (int) Math.ceil(load / (c.podPairsPerSecond() * target)));
    }

    /** [pods reporting a metric, pods not reporting yet]. */
    private int[] reporting(List<Double> readyAt, double now) {
        int yes = 0;
        for (double at : readyAt) if (at + c.rateWindowSeconds() / 2.0 <= now) yes++;
        return new int[]{yes, readyAt.size() - yes};
    }

    private void resize(List<Double> readyAt, int n, double now) {
        while (readyAt.size() < n) readyAt.add(now + c.startupSeconds());
        // the ReplicaSet removes pods that are not ready first, then the newest
        readyAt.sort(Double::compare);
        while (readyAt.size() > n) readyAt.removeLast();
    }

    private static double[] fill(int n, double v) {
        double[] a = new double[n];
        Arrays.fill(a, v);
        return a;
    }

    private static double mean(double[] ring, int n) {
        double s = 0;
        for (int i = 0; i < n; i++) s += ring[i];
        return s / n;
    }
}
