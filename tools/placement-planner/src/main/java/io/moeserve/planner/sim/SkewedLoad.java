package io.moeserve.planner.sim;

import java.util.SplittableRandom;

/**
 * A reproducible model of skewed, drifting expert popularity. In each MoE layer the experts get Zipf weights by a
 * random rank ({@code 1/rank^s}), each multiplied by a drifting factor {@code exp(σ·z)}, where z follows an
 * Ornstein–Uhlenbeck process (mean 0, variance 1, correlation time τ). So the load is Zipf-skewed at every moment,
 * moves continuously (no jumps: routing statistics of consecutive intervals are close), and over hours to a day
 * different experts become the hot ones (with σ = 1 a factor spans e^±2). Shares are capped at 1/k (top-k routing
 * sends a token to an expert at most once) and renormalised.
 *
 * <p>(Ranking by a drifting score instead, as a first version did, makes a share jump whenever two scores cross,
 * which is neither what routing statistics look like nor a fair test of "slow drift".)
 */
public final class SkewedLoad {
    private final int layers, experts, topK;
    private final double zipf, sigma, tauSeconds;
    private final double[][] base;
    private final double[][] score;
    private final SplittableRandom random;

    public SkewedLoad(int layers, int experts, int topK, double zipf, double driftSigma, double driftHours, long seed) {
        if (layers <= 0 || experts <= 0 || topK <= 0 || topK > experts) throw new IllegalArgumentException("bad model shape");
        this.layers = layers;
        this.experts = experts;
        this.topK = topK;
        this.zipf = zipf;
        this.sigma = driftSigma;
        this.tauSeconds = driftHours * 3600;
        this.random = new SplittableRandom(seed);
        this.score = new double[layers][experts];
        for (double[] row : score) for (int e = 0; e < experts; e++) row[e] = gaussian();
        this.base = new double[layers][experts];
        for (int l = 0; l < layers; l++) {
            int[] rank = new int[experts];
            for (int e = 0; e < experts; e++) rank[e] = e;
            for (int i = experts - 1; i > 0; i--) {
                int j = random.nextInt(i + 1), t = rank[i];
                rank[i] = rank[j];
                rank[j] = t;
            }
            for (int e = 0; e < experts; e++) base[l][e] = 1.0 / Math.pow(rank[e] + 1, zipf);
        }
    }

    /** Moves the scores on by {@code seconds} (exact OU transition, so the step size does not change the process). */
    public void advance(double seconds) {
        if (tauSeconds <= 0 || seconds <= 0) return;
        double a = Math.exp(-seconds / tauSeconds), b = Math.sqrt(1 - a * a);
        for (double[] row : score) for (int e = 0; e < experts; e++) row[e] = a * row[e] + b * gaussian();
    }

    /** {@code p[l][e]}: the share of layer l's (token, expert) pairs that go to expert e; each layer sums to 1. */
    public double[][] shares() {
        double[][] p = new double[layers][experts];
        for (int l = 0; l < layers; l++) {
            double sum = 0;
            for (int e = 0; e < experts; e++) {
                p[l][e] = base[l][e] * Math.exp(sigma * score[l][e]);
                sum += p[l][e];
            }
            for (int e = 0; e < experts; e++) p[l][e] /= sum;
            cap(p[l], 1.0 / topK);
        }
        return p;
    }

    /** Water-filling: no share above {@code cap}, the excess spread over the others in proportion. */
    static void cap(double[] p, double cap) {
        for (int iter = 0; iter < p.length; iter++) {
            double excess = 0, free = 0;
            for (double v : p) {
                if (v > cap) excess += v - cap;
                else if (v < cap) free += v;
            }
            if (excess <= 1e-15) return;
            for (int i = 0; i < p.length; i++) {
                if (p[i] > cap) p[i] = cap;
                else if (p[i] < cap) p[i] += excess * p[i] / free;
            }
        }
    }

    public int topK() {
        return topK;
    }

    private double gaussian() {
        double u = random.nextDouble(), v = random.nextDouble();
        return Math.sqrt(-2 * Math.log(1 - u)) * Math.cos(2 * Math.PI * v);
    }
}
