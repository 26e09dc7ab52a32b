package io.moeserve.router;

import io.moeserve.runtime.expert.ExpertSet;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * An expert group of the map: the experts it holds and its current replicas (pods), which discovery replaces
 * as pods come and go. Chooses a replica for each call by outstanding work.
 */
final class ExpertGroup {
    final String name;
    final ExpertSet hosts;
    final List<String> endpoints;
    private volatile List<ExpertReplica> replicas = List.of();
    private final AtomicInteger rotation = new AtomicInteger();

    ExpertGroup(String name, ExpertSet hosts, List<String> endpoints) {
        this.name = name;
        this.hosts = hosts;
        this.endpoints = List.copyOf(endpoints);
    }

    List<ExpertReplica> replicas() {
        return replicas;
    }

    void setReplicas(List<ExpertReplica> replicas) {
        this.replicas = List.copyOf(replicas);
    }

    /**
     * The replica to send the next call to, skipping those in {@code tried}: the usable one with the least
     * outstanding work, ties going to the next in a rotating order, so that equally loaded replicas share the work
     * (a latency tie-break was tried and starved a replica whose one slow sample was never refreshed);
     * when none is usable, the untried one whose back-off ends first, so that a group whose only pod restarted is
     * tried again rather than given up on. Null when every replica has been tried.
     */
    ExpertReplica choose(ExpertReplica[] tried, int triedCount) {
        List<ExpertReplica> r = replicas;
        int n = r.size();
        if (n == 0) return null;
        long now = System.nanoTime();
        int start = Math.floorMod(rotation.getAndIncrement(), n);
        ExpertReplica best = null;
        ExpertReplica fallback = null;
        for (int i = 0; i < n; i++) {
            ExpertReplica c = r.get((start + i) % n);
            if (contains(tried, triedCount, c) || c.health == ExpertReplica.Health.MISCONFIGURED) continue;
            if (c.usable(now)) {
                if (best == null || c.load() < best.load()) best = c;
            } else if (fallback == null || c.avoidUntilNanos - fallback.avoidUntilNanos < 0) {
                fallback = c;
            }
        }
        return best != null ? best : fallback;
    }

    /** Whether some replica can take calls now. */
    boolean hasReadyReplica() {
        long now = System.nanoTime();
        for (ExpertReplica c : replicas) if (c.usable(now)) return true;
        return false;
    }

    private static boolean contains(ExpertReplica[] a, int n, ExpertReplica r) {
        for (int i = 0; i < n; i++) if (a[i] == r) return true;
        return false;
    }
}
