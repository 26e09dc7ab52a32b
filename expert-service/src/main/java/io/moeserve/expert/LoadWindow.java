package io.moeserve.expert;

/**
 * Tokens computed and busy time over the last {@value #SECONDS} seconds, in one-second buckets, for the load a pod
 * reports in DescribePod. Written by the compute thread only; readers see a slightly stale but consistent-enough
 * view (each bucket is a pair of longs updated by one writer).
 */
final class LoadWindow {
    static final int SECONDS = 10;
    private final long[] tokens = new long[SECONDS];
    private final long[] busyNanos = new long[SECONDS];
    private final long[] second = new long[SECONDS];

    synchronized void add(long nowNanos, int count, long busy) {
        int i = bucket(nowNanos);
        tokens[i] += count;
        busyNanos[i] += busy;
    }

    /** {tokens per second, busy fraction} over the window ending now. */
    synchronized double[] rates(long nowNanos) {
        long now = nowNanos / 1_000_000_000L;
        long t = 0, b = 0;
        for (int i = 0; i < SECONDS; i++) {
            if (now - second[i] < SECONDS) {
                t += tokens[i];
                b += busyNanos[i];
            }
        }
        return new double[] {t / (double) SECONDS, Math.min(1.0, b / (SECONDS * 1e9))};
    }

    private int bucket(long nowNanos) {
        long s = nowNanos / 1_000_000_000L;
        int i = (int) Math.floorMod(s, SECONDS);
        if (second[i] != s) {
            second[i] = s;
            tokens[i] = 0;
            busyNanos[i] = 0;
        }
        return i;
    }
}
