package io.moeserve.system;

import java.util.Locale;

/**
 * A model of decode tokens/s for a router with remote expert pods, as a function of the MoE layers, the network's
 * round trip, the compute on each side and the number of micro-batches a step is split into (BENCHMARKS.md,
 * "A model of tokens/s", derives it).
 *
 * <p>Per MoE layer, one micro-batch of {@code b} tokens needs {@code a(b)} of the router's time (attention, norms,
 * the gate: everything dense), then a call: the pods compute {@code e(b)} (the slowest pod's share), and the call
 * costs {@code h} outside the computation (packing, gRPC, wake-ups on both sides) plus the network's round trip
 * {@code rtt}. The next layer of that micro-batch cannot start before its answer is back, so one micro-batch's
 * layer takes {@code a + h + rtt + e} (latency-bound). With {@code M} micro-batches in flight, the router works on
 * one while the others are on the wire or on the pods (ping-pong), so a layer takes the longest of three bounds:
 * the router's work for all micro-batches {@code M·a(b)}, the pods' {@code M·e(b)}, and one micro-batch's whole
 * cycle {@code a + h + rtt + e}:
 *
 * <pre>
 *   step = head(B) + L · max(M·a(B/M), M·e(B/M), a(B/M) + e(B/M) + h + rtt)     tokens/s = B / step
 * </pre>
 *
 * With M = 1 this is the serial sum {@code head + L·(a + e + h + rtt)} the router runs today. {@code head} is the
 * per-step work outside the MoE layers (embedding, dense layers, the LM head, sampling). The router and the pods
 * are taken to be separate machines: on one machine they share cores and the first two bounds add up instead.
 */
record ThroughputModel(int moeLayers, double headSeconds, double denseSecondsPerLayer, double expertSecondsPerLayer,
                       double callOverheadSeconds) {

    /** Seconds per decode step at round trip {@code rttSeconds} with {@code microBatches} micro-batches in flight. */
    double stepSeconds(double rttSeconds, int microBatches) {
        double a = denseSecondsPerLayer / microBatches;
        double e = expertSecondsPerLayer / microBatches;
        double layer = Math.max(Math.max(microBatches * a, microBatches * e), a + e + callOverheadSeconds + rttSeconds);
        return headSeconds + moeLayers * layer;
    }

    /** Decode tokens/s of {@code streams} concurrent streams (one token each per step). */
    double tokensPerSecond(int streams, double rttSeconds, int microBatches) {
        return streams / stepSeconds(rttSeconds, microBatches);
    }

    /**
     * Tokens/s against round trip for real models, at the per-layer compute assumed below (printed with the table).
     * The per-layer figures divide by M as if compute were linear in tokens: at small batches a GPU's time is mostly
     * reading weights, which a smaller micro-batch does not shorten, so for M > 1 the figures are an upper bound.
     */
    public static void main(String[] args) {
        int streams = args.length > 0 ? Integer.parseInt(args[0]) : 16;
        double overheadMicros = args.length > 1 ? Double.parseDouble(args[1]) : 30;
        double[] rttMicros = {0, 20, 50, 100, 200, 500, 1000};
        // name, MoE layers, head µs, dense µs per layer, expert µs per layer at `streams` tokens per step.
        Object[][] models = {
            {"Qwen3-30B-A3B", 48, 300.0, 40.0, 60.0},
            {"DeepSeek-V3", 58, 900.0, 120.0, 150.0},
        };
        System.out.printf(Locale.ROOT, "%d streams, call overhead %.0f µs outside the network%n%n", streams, overheadMicros);
        StringBuilder header = new StringBuilder("| model | MoE layers | head / dense / expert µs per step or layer | micro-batches |");
        StringBuilder rule = new StringBuilder("| --- | --- | --- | --- |");
        for (double r : rttMicros) {
            header.append(String.format(Locale.ROOT, " RTT %.0f µs |", r));
            rule.append(" --- |");
        }
        System.out.println(header);
        System.out.println(rule);
        for (Object[] m : models) {
            ThroughputModel model = new ThroughputModel((Integer) m[1], (Double) m[2] * 1e-6, (Double) m[3] * 1e-6, (Double) m[4] * 1e-6,
                    overheadMicros * 1e-6);
            for (int micro : new int[] {1, 2}) {
                StringBuilder row = new StringBuilder(String.format(Locale.ROOT, "| %s | %d | %.0f / %.0f / %.0f | %d |", m[0], m[1], m[2], m[3],
                        m[4], micro));
                for (double r : rttMicros) row.append(String.format(Locale.ROOT, " %.0f |", model.tokensPerSecond(streams, r * 1e-6, micro)));
                System.out.println(row);
            }
        }
    }
}
