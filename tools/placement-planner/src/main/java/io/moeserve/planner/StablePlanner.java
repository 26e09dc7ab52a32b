package io.moeserve.planner;

import java.util.Arrays;
import java.util.BitSet;
import java.util.Comparator;
import java.util.stream.IntStream;

/**
 * The migration-aware planner: as balanced as EPLB, with few moves between successive plans.
 *
 * <p>Why. EPLB recomputes every plan from scratch. Its GPU (here: expert group) numbering is an artefact of the
 * packing order, so two plans for nearly the same load can put almost every expert somewhere new, and in our system
 * every (group, expert) that changes is weights a group's pods must load, in a rolling update of that group's
 * Deployment. The load drifts slowly, so the previous plan is usually almost right.
 *
 * <p>How, per MoE layer (layers are independent; group g of layer l and of layer l' are the same Deployment, but any
 * set of experts of layer l may sit beside any set of layer l'):
 * <ol>
 *   <li>Run EPLB from scratch on the new load. Its largest group load is the bound B; a plan is acceptable when its
 *       own largest group load is at most B·(1 + slack). With slack 0 (the default) we are never worse than EPLB.
 *   <li>Candidate 1, EPLB relabelled: match EPLB's groups to the previous groups by maximum overlap (an assignment
 *       problem, solved exactly), so each new group takes the name of the old group it most resembles. Same loads as
 *       EPLB, far fewer moves; always acceptable.
 *   <li>Candidate 2, local search from the previous plan: while the plan is not acceptable, apply the best move at
 *       the bottleneck group: swap one of its experts with another group's (2 moves), or re-point one of its slots
 *       from an expert that has another replica to an expert it lacks (1 move; this is how replica counts follow the
 *       load). "Best" is lexicographic on (largest load, number of groups at it, sum of squared loads), so plateaus
 *       where several groups tie are still climbed. It stops at acceptance, when no move improves, or at the move
 *       budget.
 *   <li>Keep the acceptable candidate with fewer moves (ties: lower largest load).
 * </ol>
 * Without a previous plan, the local search starts from EPLB's plan itself and only improves it, so a first plan is
 * never worse than EPLB either. A previous plan with another number of groups is not searched from (candidate 1
 * only); one whose groups hold fewer experts than the slots allow is first filled up (those fills count as moves).
 */
public final class StablePlanner {

    /**
     * @param numReplicas    physical slots per layer (groups × slots per group)
     * @param numGroups      EPLB's expert groups for group-limited routing (1 = none)
     * @param numNodes       EPLB's nodes (1 = one failure/locality domain)
     * @param numGpus        expert groups (our Deployments; EPLB's GPUs)
     * @param slack          accepted excess of the largest group load over EPLB's, as a fraction (0 = none)
     * @param maxMovesPerLayer budget of the local search, in moves per layer
     */
    public record Options(int numReplicas, int numGroups, int numNodes, int numGpus, double slack, int maxMovesPerLayer) {
        public Options {
            if (slack < 0) throw new IllegalArgumentException("slack must be >= 0");
            if (maxMovesPerLayer < 0) throw new IllegalArgumentException("move budget must be >= 0");
        }

        public static Options global(int numGroups, int slotsPerGroup) {
            return new Options(numGroups * slotsPerGroup, 1, 1, numGroups, 0.0, 4 * slotsPerGroup * numGroups);
        }

        public Options withSlack(double s) {
            return new Options(numReplicas, numGroups, numNodes, numGpus, s, maxMovesPerLayer);
        }
    }

    /**
     * @param placement       the plan
     * @param eplb            EPLB's plan from scratch, as it numbers its groups
     * @param eplbRelabelled  EPLB's plan with groups renamed to match the previous plan
     */
    public record Outcome(Placement placement, Placement eplb, Placement eplbRelabelled) {}

    private StablePlanner() {}

    public static Outcome plan(double[][] weight, Options o, Placement previous) {
        Placement eplb = Eplb.rebalance(weight, o.numReplicas(), o.numGroups(), o.numNodes(), o.numGpus()).toPlacement();
        int layers = weight.length;
        int[][][] chosen = new int[layers][][];
        int[][][] relabelled = new int[layers][][];
        for (int l = 0; l < layers; l++) {
            int[][] fromScratch = eplb.experts()[l];
            double[] w = weight[l];
            double bound = max(Placement.layerLoads(fromScratch, w));
            double accept = bound * (1 + o.slack()) + 1e-9 * Math.max(1, bound);
            if (previous == null || l >= previous.layers()) {
                relabelled[l] = fromScratch;
                chosen[l] = search(fill(copy(fromScratch), fromScratch[0].length, w), w, Double.NEGATIVE_INFINITY, o.maxMovesPerLayer());
                continue;
            }
            int[][] before = previous.experts()[l];
            int[][] a = relabel(fromScratch, before, w.length);
            relabelled[l] = a;
            int[][] best = a;
            if (before.length == fromScratch.length) {
                int[][] b = search(fill(copy(before), fromScratch[0].length, w), w, accept, o.maxMovesPerLayer());
                if (covers(b, w.length) && max(Placement.layerLoads(b, w)) <= accept) {
                    int mb = moves(before, b), ma = moves(before, a);
                    if (mb < ma || (mb == ma && max(Placement.layerLoads(b, w)) < max(Placement.layerLoads(a, w)))) best = b;
                }
            }
            chosen[l] = best;
        }
        return new Outcome(new Placement(chosen), eplb, new Placement(relabelled));
    }

    /** EPLB's plan (or any plan) with its groups renamed, layer by layer, after the previous plan's. */
    public static Placement relabel(Placement next, Placement before) {
        int[][][] out = new int[next.layers()][][];
        for (int l = 0; l < next.layers(); l++) {
            out[l] = before == null || l >= before.layers() ? next.experts()[l] : relabel(next.experts()[l], before.experts()[l], 0);
        }
        return new Placement(out);
    }

    /** Renames the groups of {@code next} after the groups of {@code before} they overlap most. */
    static int[][] relabel(int[][] next, int[][] before, int numExperts) {
        int n = Math.max(next.length, before.length);
        double[][] cost = new double[n][n];
        for (int i = 0; i < next.length; i++) {
            BitSet a = Placement.distinct(next[i]);
            for (int j = 0; j < before.length; j++) {
                BitSet b = (BitSet) a.clone();
                b.and(Placement.distinct(before[j]));
                cost[i][j] = -b.cardinality();
            }
        }
        int[] col = Hungarian.solve(cost);
        Integer[] order = IntStream.range(0, next.length).boxed().toArray(Integer[]::new);
        Arrays.sort(order, Comparator.comparingInt(i -> col[i]));
        int[][] out = new int[next.length][];
        for (int k = 0; k < next.length; k++) out[k] = next[order[k]].clone();
        return out;
    }

    /**
     * Best-improvement local search at the bottleneck group until the largest load is at most {@code accept} (pass
     * −∞ to improve as far as it goes) or the budget is spent.
     */
    static int[][] search(int[][] s, double[] w, double accept, int budget) {
        int experts = w.length;
        int spent = 0;
        while (spent < budget) {
            double[] load = Placement.layerLoads(s, w);
            Score current = Score.of(load);
            if (current.max <= accept) break;
            int[] count = Placement.hostCount(s, experts);
            int a = argmax(load);
            Score bestScore = current;
            int bestCost = 0, bestI = -1, bestB = -1, bestJ = -1, bestY = -1;
            BitSet onA = Placement.distinct(s[a]);
            // swaps with another group
            for (int i = 0; i < s[a].length; i++) {
                int x = s[a][i];
                double wx = w[x] / count[x];
                for (int b = 0; b < s.length; b++) {
                    if (b == a) continue;
                    BitSet onB = Placement.distinct(s[b]);
                    if (onB.get(x)) continue;
                    for (int j = 0; j < s[b].length; j++) {
                        int y = s[b][j];
                        if (onA.get(y)) continue;
                        double wy = w[y] / count[y];
                        double[] next = load.clone();
                        next[a] += wy - wx;
                        next[b] += wx - wy;
                        Score sc = Score.of(next);
                        if (sc.better(bestScore) || (sc.same(bestScore) && bestI >= 0 && 2 < bestCost)) {
                            bestScore = sc;
                            bestCost = 2;
                            bestI = i; bestB = b; bestJ = j; bestY = -1;
                        }
                    }
                }
            }
            // re-point a slot of a replicated expert to an expert the group lacks
            for (int i = 0; i < s[a].length; i++) {
                int x = s[a][i];
                if (count[x] < 2) continue;
                for (int y = 0; y < experts; y++) {
                    if (onA.get(y)) continue;
                    int old = s[a][i];
                    s[a][i] = y;
                    Score sc = Score.of(Placement.layerLoads(s, w));
                    s[a][i] = old;
                    if (sc.better(bestScore) || (sc.same(bestScore) && bestI >= 0 && 1 < bestCost)) {
                        bestScore = sc;
                        bestCost = 1;
                        bestI = i; bestB = -1; bestJ = -1; bestY = y;
                    }
                }
            }
            if (bestI < 0) break;
            if (bestY >= 0) {
                s[a][bestI] = bestY;
            } else {
                int x = s[a][bestI];
                s[a][bestI] = s[bestB][bestJ];
                s[bestB][bestJ] = x;
            }
            spent += bestCost;
        }
        return s;
    }

    /** Lexicographic objective: largest load, how many groups share it, sum of squares. */
    private record Score(double max, int atMax, double sumSq) {
        static Score of(double[] load) {
            double m = StablePlanner.max(load), tol = 1e-12 * Math.max(1, m), sq = 0;
            int n = 0;
            for (double v : load) {
                if (v >= m - tol) n++;
                sq += v * v;
            }
            return new Score(m, n, sq);
        }

        boolean better(Score o) {
            double tol = 1e-12 * Math.max(1, o.max);
            if (max < o.max - tol) return true;
            if (max > o.max + tol) return false;
            if (atMax != o.atMax) return atMax < o.atMax;
            return sumSq < o.sumSq - 1e-12 * Math.max(1, o.sumSq);
        }

        boolean same(Score o) {
            return !better(o) && !o.better(this);
        }
    }

    public static int moves(int[][] before, int[][] after) {
        int m = 0;
        for (int g = 0; g < after.length; g++) m += Placement.added(g < before.length ? before[g] : new int[0], after[g]);
        return m;
    }

    /**
     * Fills a group's free slots: a slot holding an expert the group already has (EPLB may put two replicas of one
     * expert on one GPU, which a group hosts once) or a missing slot (a previous plan read back from its specs) takes
     * the expert whose extra replica leaves the layer's largest group load lowest, as long as it does not raise it.
     * A slot no expert fits stays free (the group hosts fewer experts), so filling never makes a plan worse.
     */
    static int[][] fill(int[][] s, int slots, double[] w) {
        int experts = w.length;
        int want = Math.min(slots, experts);
        for (int g = 0; g < s.length; g++) {
            int[] d = Placement.distinct(s[g]).stream().toArray();
            if (d.length == s[g].length && d.length >= want) continue;
            s[g] = d;
            while (s[g].length < want) {
                double current = max(Placement.layerLoads(s, w));
                BitSet on = Placement.distinct(s[g]);
                int[] base = s[g];
                int best = -1;
                double bestMax = Double.POSITIVE_INFINITY;
                for (int y = 0; y < experts; y++) {
                    if (on.get(y)) continue;
                    int[] trial = java.util.Arrays.copyOf(base, base.length + 1);
                    trial[base.length] = y;
                    s[g] = trial;
                    double m = max(Placement.layerLoads(s, w));
                    if (m < bestMax) {
                        bestMax = m;
                        best = y;
                    }
                }
                s[g] = base;
                if (best < 0 || bestMax > current * (1 + 1e-12)) break;
                int[] next = java.util.Arrays.copyOf(base, base.length + 1);
                next[base.length] = best;
                s[g] = next;
            }
        }
        return s;
    }

    private static boolean covers(int[][] s, int experts) {
        for (int v : Placement.hostCount(s, experts)) if (v == 0) return false;
        return true;
    }

    static double max(double[] v) {
        double m = Double.NEGATIVE_INFINITY;
        for (double x : v) m = Math.max(m, x);
        return m;
    }

    private static int argmax(double[] v) {
        int a = 0;
        for (int i = 1; i < v.length; i++) if (v[i] > v[a]) a = i;
        return a;
    }

    private static int[][] copy(int[][] s) {
        int[][] c = new int[s.length][];
        for (int i = 0; i < s.length; i++) c[i] = s[i].clone();
        return c;
    }
}
