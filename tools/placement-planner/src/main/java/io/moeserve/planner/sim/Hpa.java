package io.moeserve.planner.sim;

import java.util.ArrayDeque;
import java.util.Deque;

/**
 * The HorizontalPodAutoscaler's decision for one target, following the rules of the Kubernetes controller
 * (pkg/controller/podautoscaler, autoscaling/v2) for a Pods metric with an AverageValue target:
 * <ul>
 *   <li>every sync period: usage ratio = mean metric of the pods that report one ÷ target; within the tolerance
 *       (|ratio − 1| ≤ 0.1 by default) nothing changes; otherwise desired = ceil(ratio × pods reporting). Pods without
 *       a metric yet (starting) count as using 0 when scaling up and as exactly at target when scaling down; if that
 *       recomputation falls within tolerance or reverses the direction, nothing changes;
 *   <li>stabilisation: the recommendation is clamped between the minimum of the recommendations within the
 *       scale-up window and the maximum within the scale-down window (defaults 0 s and 300 s);
 *   <li>rate policies over their periods (defaults: up by max(4 pods, 100 %) per 15 s, down by 100 % per 15 s),
 *       counted from the replicas at the start of the period;
 *   <li>min/max replicas.
 * </ul>
 */
public final class Hpa {
    /** Scaling behaviour: stabilisation windows and one Pods and one Percent policy per direction (selectPolicy Max). */
    public record Behavior(int upWindowSeconds, int upPods, int upPercent, int upPeriodSeconds,
                           int downWindowSeconds, int downPods, int downPercent, int downPeriodSeconds) {
        public static Behavior kubernetesDefault() {
            return new Behavior(0, 4, 100, 15, 300, 0, 100, 15);
        }
    }

    private record Sample(double time, int value) {}

    private final int minReplicas, maxReplicas;
    private final double target, tolerance;
    private final Behavior behavior;
    private final Deque<Sample> recommendations = new ArrayDeque<>();
    private final Deque<Sample> upEvents = new ArrayDeque<>(), downEvents = new ArrayDeque<>();

    public Hpa(int minReplicas, int maxReplicas, double target, double tolerance, Behavior behavior) {
        this.minReplicas = minReplicas;
        this.maxReplicas = maxReplicas;
        this.target = target;
        this.tolerance = tolerance;
        this.behavior = behavior;
    }

    /**
     * One sync.
     *
     * @param current   the target's replicas (spec)
     * @param metrics   the metric of each pod that reports one
     * @param missing   pods that do not report yet
     * @return the new replica count
     */
    public int sync(double now, int current, double[] metrics, int missing) {
        int desired = metricReplicas(current, metrics, missing);
        int stabilised = stabilise(now, current, desired);
        int limited = rateLimit(now, current, stabilised);
        int next = Math.max(minReplicas, Math.min(maxReplicas, limited));
        if (next > current) upEvents.addLast(new Sample(now, next - current));
        if (next < current) downEvents.addLast(new Sample(now, current - next));
        return next;
    }

    int metricReplicas(int current, double[] metrics, int missing) {
        if (metrics.length == 0) return current;
        double sum = 0;
        for (double m : metrics) sum += m;
        double ratio = sum / metrics.length / target;
        if (missing == 0) {
            if (Math.abs(ratio - 1) <= tolerance) return current;
            return (int) Math.ceil(ratio * metrics.length);
        }
        double fill = ratio < 1 ? target : 0;
        double newRatio = (sum + fill * missing) / (metrics.length + missing) / target;
        if (Math.abs(newRatio - 1) <= tolerance || (ratio < 1) != (newRatio < 1)) return current;
        int r = (int) Math.ceil(newRatio * (metrics.length + missing));
        if ((newRatio > 1 && r < current) || (newRatio < 1 && r > current)) return current;
        return r;
    }

    private int stabilise(double now, int current, int desired) {
        recommendations.addLast(new Sample(now, desired));
        int longest = Math.max(behavior.upWindowSeconds(), behavior.downWindowSeconds());
        while (!recommendations.isEmpty() && recommendations.peekFirst().time() < now - longest) recommendations.removeFirst();
        int up = desired, down = desired;
        for (Sample s : recommendations) {
            if (s.time() >= now - behavior.upWindowSeconds()) up = Math.min(up, s.value());
            if (s.time() >= now - behavior.downWindowSeconds()) down = Math.max(down, s.value());
        }
        int r = current;
        if (r < up) r = up;
        if (r > down) r = down;
        return r;
    }

    private int rateLimit(double now, int current, int desired) {
        if (desired > current) {
            int added = sumSince(upEvents, now - behavior.upPeriodSeconds());
            int start = current - added;
            int byPods = start + behavior.upPods();
            int byPercent = (int) Math.ceil(start * (1 + behavior.upPercent() / 100.0));
            return Math.min(desired, Math.max(byPods, byPercent));
        }
        if (desired < current) {
            int removed = sumSince(downEvents, now - behavior.downPeriodSeconds());
            int start = current + removed;
            int byPods = behavior.downPods() > 0 ? start - behavior.downPods() : Integer.MAX_VALUE;
            int byPercent = (int) Math.ceil(start * (1 - behavior.downPercent() / 100.0));
            return Math.max(desired, Math.min(byPods, byPercent));
        }
        return current;
    }

    private static int sumSince(Deque<Sample> events, double since) {
        while (!events.isEmpty() && events.peekFirst().time() <= since) events.removeFirst();
        int n = 0;
        for (Sample s : events) n += s.value();
        return n;
    }
}
