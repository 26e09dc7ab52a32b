package io.moeserve.system;

import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.proto.router.v1.RouterServiceGrpc;
import io.moeserve.proto.router.v1.SamplingParameters;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Decode throughput and per-token latency of the served model at several numbers of concurrent streams, all-in-one
 * (experts inside the router) against router + two expert pods on loopback, and the bytes the expert calls put on
 * the wire. Run with {@code scripts/bench-serving.sh} (its header lists the arguments); prints Markdown tables for
 * BENCHMARKS.md.
 *
 * <p>Every setup (all-in-one, and one router + two pods per placement given) runs at once, and the measured runs
 * alternate between them for a number of rounds; each distributed run is compared with the all-in-one run of its
 * round, so drift of the machine's speed over minutes shows as spread between rounds, not as a difference between
 * setups. A breakdown from the services' metrics sums every round.
 *
 * <p>Each stream has a short prompt and decodes a fixed number of tokens with sampling off; the first token of every
 * stream (which includes its prefill and queueing) is left out, so the figures are decode figures: tokens/s is all
 * streams' tokens after their first, over the time from the first stream's first token to the last stream's last
 * token; latency is the time between consecutive tokens of a stream.
 *
 * <p>A network you can dial: each distributed placement runs at every one-way delay given, with a {@link DelayRelay}
 * between the router and each pod (both directions), and the tables have a row per delay. The {@link ThroughputModel}
 * is fitted on each placement's first delay, from its breakdown row (step time, the router's wait per layer, the
 * slowest pod's compute per call), and predicts the tokens/s of the other delays beside their measurement, and what
 * two micro-batches in flight (ping-pong) would give at each.
 */
public final class ServingBenchmark {
    private static final int PROMPT_TOKENS = 16;

    public static void main(String[] args) throws Exception {
        Path model = Path.of(args.length > 0 ? args[0] : "models/bench").toAbsolutePath();
        int tokens = args.length > 1 ? Integer.parseInt(args[1]) : 48;
        int[] streams = args.length > 2 ? Arrays.stream(args[2].split(",")).mapToInt(Integer::parseInt).toArray() : new int[] {1, 4, 16};
        // The two pods compute at the same time, so each gets its share of the cores, as a CPU request would give it
        // on a node this size; more kernel threads than cores make every product wait for a descheduled thread.
        // The router keeps all of them: it computes while the pods wait, and the pods while it waits.
        int podThreads = args.length > 3 && Integer.parseInt(args[3]) > 0 ? Integer.parseInt(args[3]) : Math.max(1, Deployment.BENCHMARK_THREADS / 2);
        int rounds = args.length > 4 ? Integer.parseInt(args[4]) : 3;
        ModelConfig config = ConfigParser.load(model);
        int experts = config.moe().numFfnExperts();
        // Each distributed setup is two pods' experts, "LOW/HIGH": halves by default; "0-4/3-7" has both host 3 and 4.
        List<String> placements = args.length > 5 && !args[5].isBlank() ? List.of(args[5].split(","))
                : List.of("0-" + (experts / 2 - 1) + "/" + (experts / 2) + "-" + (experts - 1));
        // One-way delays between the router and its pods, µs, each "D" or "D+J" (up to J µs of jitter): every
        // placement runs at each, through a DelayRelay; "direct" is without a relay.
        List<String> delays = List.of((args.length > 6 && !args[6].isBlank() ? args[6] : "direct").split(","));
        System.out.printf(Locale.ROOT, "model %s (%s, %d layers, %d experts top-%d), %d tokens per stream, %d cores, %d kernel threads"
                        + " per expert pod, %d rounds, one-way delays %s µs%n", model, config.architecture().hfClassName(), config.numLayers(),
                experts, config.moe().topK(), tokens, Runtime.getRuntime().availableProcessors(), podThreads, rounds, delays);
        List<String> setups = new ArrayList<>();
        List<Deployment> deployments = new ArrayList<>();
        // Per setup: its placement's index (-1 for all-in-one), its one-way delay in µs (-1 direct) and its jitter.
        List<int[]> placementOf = new ArrayList<>();
        List<long[]> delayOf = new ArrayList<>();
        try {
            // Every setup is started up front and the measured runs alternate between them, round after round: this
            // VM's speed drifts by a quarter from minute to minute, and a ratio of two runs minutes apart measured
            // that drift as much as the setups. Idle services cost next to nothing meanwhile.
            Deployment local = new Deployment(model, "bench", Deployment.BENCHMARK_THREADS);
            deployments.add(local);
            local.startRouter(Map.of("moe.router.experts.mode", "local"));
            setups.add("all-in-one");
            placementOf.add(new int[] {-1});
            delayOf.add(new long[] {-1, 0});
            for (int pi = 0; pi < placements.size(); pi++) {
                String setup = placements.get(pi);
                // "LOW/HIGH" or "LOW/HIGH@key=value;key=value" with settings for that setup: moe.expert.* go to its
                // pods, "model" serves another checkpoint (a pruned, merged or quantized variant of the first), the
                // rest go to its router.
                String placement = setup.contains("@") ? setup.substring(0, setup.indexOf('@')) : setup;
                Map<String, String> routerSettings = new LinkedHashMap<>();
                Map<String, String> pod = new LinkedHashMap<>(Map.of("moe.threads", Integer.toString(podThreads)));
                Path setupModel = model;
                if (setup.contains("@")) {
                    for (String kv : setup.substring(setup.indexOf('@') + 1).split(";")) {
                        String key = kv.substring(0, kv.indexOf('='));
                        String value = kv.substring(kv.indexOf('=') + 1);
                        if (key.equals("model")) setupModel = Path.of(value).toAbsolutePath();
                        else (key.startsWith("moe.expert.") ? pod : routerSettings).put(key, value);
                    }
                }
                Map<String, String> described = new LinkedHashMap<>(routerSettings);
                pod.forEach((key, value) -> {
                    if (key.startsWith("moe.expert.")) described.put(key, value);
                });
                if (!setupModel.equals(model)) described.put("model", setupModel.getFileName().toString());
                String[] halves = placement.split("/");
                for (String delay : delays) {
                    long[] dj = delay.equals("direct") ? new long[] {-1, 0}
                            : Arrays.stream(delay.split("\\+")).mapToLong(Long::parseLong).toArray();
                    long oneWay = dj[0];
                    long jitter = dj.length > 1 ? dj[1] : 0;
                    Deployment d = new Deployment(setupModel, "bench", Deployment.BENCHMARK_THREADS);
                    deployments.add(d);
                    d.startExpert("low", "*:" + halves[0], pod);
                    d.startExpert("high", "*:" + halves[1], pod);
                    if (oneWay >= 0) d.delayPods(oneWay, jitter);
                    d.startRouter(routerSettings);
                    setups.add("router + 2 expert pods (" + halves[0] + " / " + halves[1] + (described.isEmpty() ? "" : ", " + described) + ")");
                    placementOf.add(new int[] {pi});
                    delayOf.add(new long[] {oneWay, jitter});
                }
            }
            List<RouterServiceGrpc.RouterServiceBlockingStub> stubs = new ArrayList<>();
            for (Deployment d : deployments) {
                d.awaitReady();
                stubs.add(RouterServiceGrpc.newBlockingStub(d.channel()));
            }
            // Warm-up: every measured row once, so that C2 has compiled the decode, batched-expert and transport
            // paths of every process (three JVMs when distributed) at every batch size before anything is measured;
            // with a shorter warm-up the compiler threads still took a fifth of the router's CPU during the first
            // measured row.
            for (RouterServiceGrpc.RouterServiceBlockingStub stub : stubs) for (int n : streams) run(stub, n, tokens);
            int cells = setups.size() * streams.length;
            Result[][] results = new Result[cells][rounds];
            Snapshot[] totals = new Snapshot[cells];
            for (int round = 0; round < rounds; round++) {
                for (int si = 0; si < streams.length; si++) {
                    for (int d = 0; d < setups.size(); d++) {
                        int cell = d * streams.length + si;
                        Snapshot before = Snapshot.of(deployments.get(d));
                        results[cell][round] = run(stubs.get(d), streams[si], tokens);
                        Snapshot during = Snapshot.of(deployments.get(d)).minus(before);
                        totals[cell] = totals[cell] == null ? during : totals[cell].plus(during);
                        System.out.printf(Locale.ROOT, "round %d: %s, %d streams: %.1f tokens/s%n", round + 1, setups.get(d),
                                streams[si], results[cell][round].tokensPerSecond);
                    }
                }
            }
            int layers = config.numSparseLayers();
            System.out.println();
            System.out.println("| setup | one-way delay µs | streams | decode tokens/s, mean of rounds (min–max) | share of all-in-one, mean of"
                    + " rounds (min–max) | share of the placement's first delay | model: tokens/s predicted (error) / with 2 micro-batches"
                    + " | mean / p50 / p99 ms per token | wire bytes per token per MoE layer |");
            System.out.println("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
            for (int d = 0; d < setups.size(); d++) {
                // The placement's first setup (its first delay) is the one the model is fitted on for the others.
                int first = -1;
                for (int o = 0; o < setups.size(); o++) {
                    if (placementOf.get(d)[0] >= 0 && placementOf.get(o)[0] == placementOf.get(d)[0]) {
                        first = o;
                        break;
                    }
                }
                for (int si = 0; si < streams.length; si++) {
                    int cell = d * streams.length + si;
                    Result[] r = results[cell];
                    double[] tps = Arrays.stream(r).mapToDouble(Result::tokensPerSecond).toArray();
                    String share = "—", shareOfFirst = "—", predicted = "—";
                    if (d > 0) {
                        share = shares(r, results[si]);
                        int firstCell = first * streams.length + si;
                        if (first != d) shareOfFirst = shares(r, results[firstCell]);
                        // Fitted on the first delay's breakdown, predicting this delay's tokens/s; the fit row itself is
                        // marked. Scaled from the fit row's measured tokens/s, as the client's count and the router's
                        // steps differ by the streams' first tokens.
                        ThroughputModel fit = totals[firstCell].fit(layers, roundTripSeconds(delayOf.get(first)));
                        double rtt = roundTripSeconds(delayOf.get(d));
                        double firstTps = mean(Arrays.stream(results[firstCell]).mapToDouble(Result::tokensPerSecond).toArray());
                        double firstStep = fit.stepSeconds(roundTripSeconds(delayOf.get(first)), 1);
                        double one = firstTps * firstStep / fit.stepSeconds(rtt, 1);
                        double two = firstTps * firstStep / fit.stepSeconds(rtt, 2);
                        predicted = first == d ? String.format(Locale.ROOT, "fit / %.1f", two)
                                : String.format(Locale.ROOT, "%.1f (%+.0f%%) / %.1f", one, 100 * (one / mean(tps) - 1), two);
                    }
                    // Every token the model processed crossed the wire: prompt tokens (prefill) and generated ones.
                    long processed = (long) rounds * streams[si] * (PROMPT_TOKENS + tokens);
                    String wire = d == 0 ? "—" : String.format(Locale.ROOT, "%.0f", totals[cell].wireBytes() / processed / layers);
                    System.out.printf(Locale.ROOT, "| %s | %s | %d | %.1f (%.1f–%.1f) | %s | %s | %s | %.1f / %.1f / %.1f | %s |%n", setups.get(d),
                            delayLabel(delayOf.get(d)), streams[si], mean(tps), min(tps), max(tps), share, shareOfFirst, predicted,
                            Arrays.stream(r).mapToDouble(Result::meanLatencyMs).average().orElse(0),
                            Arrays.stream(r).mapToDouble(Result::p50Ms).average().orElse(0),
                            Arrays.stream(r).mapToDouble(Result::p99Ms).average().orElse(0), wire);
                }
            }
            System.out.println();
            System.out.println("| setup | one-way delay µs | streams | step ms | router's wait per MoE layer ms | of which sending ms"
                    + " | expert call ms | pod's handling ms per call | pod compute ms per call (per pod) | pod queue ms per call"
                    + " | router CPU ms per token | expert pods' CPU ms per token |");
            System.out.println("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
            for (int d = 0; d < setups.size(); d++) {
                for (int si = 0; si < streams.length; si++) {
                    System.out.println(totals[d * streams.length + si].row(setups.get(d) + " | " + delayLabel(delayOf.get(d)), streams[si],
                            (long) rounds * streams[si] * tokens));
                }
            }
        } finally {
            deployments.forEach(Deployment::close);
        }
    }

    /** This run's tokens/s as a share of {@code base}'s, round by round: mean (min–max). */
    private static String shares(Result[] r, Result[] base) {
        double[] ratios = new double[r.length];
        for (int i = 0; i < r.length; i++) ratios[i] = 100 * r[i].tokensPerSecond / base[i].tokensPerSecond;
        return String.format(Locale.ROOT, "%.1f%% (%.1f–%.1f)", mean(ratios), min(ratios), max(ratios));
    }

    /** The network's round trip a setup adds: twice the one-way delay and the mean jitter; none when direct. */
    private static double roundTripSeconds(long[] delay) {
        return delay[0] < 0 ? 0 : 2 * (delay[0] + delay[1] / 2.0) * 1e-6;
    }

    private static String delayLabel(long[] delay) {
        return delay[0] < 0 ? "direct" : delay[1] == 0 ? Long.toString(delay[0]) : delay[0] + " + up to " + delay[1];
    }

    private static double mean(double[] v) {
        return Arrays.stream(v).average().orElse(0);
    }

    private static double min(double[] v) {
        return Arrays.stream(v).min().orElse(0);
    }

    private static double max(double[] v) {
        return Arrays.stream(v).max().orElse(0);
    }

    /**
     * Where a run's time went, from the services' own metrics and the processes' CPU time: the router's forward
     * step, its expert calls as it waits for them (and their payload bytes, both ways), and the pods' compute and
     * queueing per call.
     */
    private record Snapshot(double wireBytes, double steps, double stepSeconds, double layers, double layerSeconds, double sendSeconds, double calls,
                            double callSeconds, double[] podCalls, double[] podBusySeconds, double podQueueSeconds, double podHandlingSeconds,
                            long routerCpuNanos, long podCpuNanos) {
        static Snapshot of(Deployment c) {
            String router = c.router.get("/q/metrics");
            List<ServiceProcess> pods = c.experts.values().stream().flatMap(List::stream).toList();
            double[] podCalls = new double[pods.size()], busy = new double[pods.size()];
            double queue = 0, handling = 0;
            long podCpu = 0;
            for (int i = 0; i < pods.size(); i++) {
                String m = pods.get(i).get("/q/metrics");
                podCalls[i] = sum(m, "moe_expert_pod_calls_total");
                busy[i] = sum(m, "moe_expert_pod_busy_seconds_total");
                queue += sum(m, "moe_expert_pod_queue_wait_seconds_sum");
                handling += sum(m, "grpc_server_processing_duration_seconds_sum", "method=\"ComputeExperts\"");
                podCpu += pods.get(i).cpuNanos();
            }
            return new Snapshot(sum(router, "moe_router_wire_bytes_total"), sum(router, "moe_router_step_seconds_count"), sum(router,
                    "moe_router_step_seconds_sum"),
                    sum(router, "moe_router_expert_layer_seconds_count"), sum(router, "moe_router_expert_layer_seconds_sum"),
                    sum(router, "moe_router_expert_send_seconds_sum"),
                    sum(router, "moe_router_expert_call_seconds_count"), sum(router, "moe_router_expert_call_seconds_sum"),
                    podCalls, busy, queue, handling, c.router.cpuNanos(), podCpu);
        }

        Snapshot minus(Snapshot o) {
            return combine(o, -1);
        }

        Snapshot plus(Snapshot o) {
            return combine(o, 1);
        }

        private Snapshot combine(Snapshot o, int sign) {
            double[] calls = new double[podCalls.length], busy = new double[podCalls.length];
            for (int i = 0; i < calls.length; i++) {
                calls[i] = podCalls[i] + sign * o.podCalls[i];
                busy[i] = podBusySeconds[i] + sign * o.podBusySeconds[i];
            }
            return new Snapshot(wireBytes + sign * o.wireBytes, steps + sign * o.steps, stepSeconds + sign * o.stepSeconds,
                    layers + sign * o.layers, layerSeconds + sign * o.layerSeconds, sendSeconds + sign * o.sendSeconds, this.calls + sign * o.calls,
                    callSeconds + sign * o.callSeconds, calls, busy, podQueueSeconds + sign * o.podQueueSeconds,
                    podHandlingSeconds + sign * o.podHandlingSeconds, routerCpuNanos + sign * o.routerCpuNanos,
                    podCpuNanos + sign * o.podCpuNanos);
        }

        /**
         * The {@link ThroughputModel} (one micro-batch) fitted on this breakdown, taken at round trip {@code rtt}: the
         * router's wait per layer is the slowest pod's compute plus the call's cost outside it plus the round trip,
         * and the rest of the step is the router's own work, all of it counted per layer (no separate head).
         */
        ThroughputModel fit(int moeLayers, double rtt) {
            double step = stepSeconds / steps;
            double wait = layerSeconds / layers;
            double compute = 0;
            for (int i = 0; i < podCalls.length; i++) compute = Math.max(compute, podBusySeconds[i] / podCalls[i]);
            return new ThroughputModel(moeLayers, 0, Math.max(0, step / moeLayers - wait), compute, wait - compute - rtt);
        }

        String row(String setup, int streams, long tokens) {
            if (calls == 0) {
                return String.format(Locale.ROOT, "| %s | %d | %.1f | — | — | — | — | — | — | %.1f | — |", setup, streams,
                        1e3 * stepSeconds / steps, routerCpuNanos / 1e6 / tokens);
            }
            StringBuilder perPod = new StringBuilder();
            double allCalls = 0;
            for (int i = 0; i < podCalls.length; i++) {
                perPod.append(i == 0 ? "" : " / ").append(String.format(Locale.ROOT, "%.2f", 1e3 * podBusySeconds[i] / podCalls[i]));
                allCalls += podCalls[i];
            }
            return String.format(Locale.ROOT, "| %s | %d | %.1f | %.2f | %.2f | %.2f | %.2f | %s | %.2f | %.1f | %.1f |", setup, streams,
                    1e3 * stepSeconds / steps, 1e3 * layerSeconds / layers, 1e3 * sendSeconds / layers, 1e3 * callSeconds / calls,
                    1e3 * podHandlingSeconds / allCalls, perPod,
                    1e3 * podQueueSeconds / allCalls, routerCpuNanos / 1e6 / tokens, podCpuNanos / 1e6 / tokens);
        }
    }

    /** The sum of every sample of a Prometheus metric, whatever its labels. */
    private static double sum(String metrics, String name) {
        return sum(metrics, name, "");
    }

    /** The sum of the samples of a Prometheus metric whose labels contain {@code label}. */
    private static double sum(String metrics, String name, String label) {
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(name) + "(\\{[^}]*\\})? ([0-9.E+-]+)$").matcher(metrics);
        double total = 0;
        while (m.find()) {
            if (m.group(1) == null ? label.isEmpty() : m.group(1).contains(label)) total += Double.parseDouble(m.group(2));
        }
        return total;
    }

    private record Result(double tokensPerSecond, double meanLatencyMs, double p50Ms, double p99Ms) {}

    private static Result run(RouterServiceGrpc.RouterServiceBlockingStub stub, int n, int tokens) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(n);
        CountDownLatch go = new CountDownLatch(1);
        try {
            List<Future<long[]>> futures = new ArrayList<>();
            for (int s = 0; s < n; s++) {
                GenerateRequest.Builder b = GenerateRequest.newBuilder().setMaxNewTokens(tokens).setIgnoreEos(true)
                        .setSampling(SamplingParameters.newBuilder().setTemperature(0));
                for (int i = 0; i < PROMPT_TOKENS; i++) b.addPromptTokenIds((s * 977 + i * 131 + 7) % 4000);
                GenerateRequest req = b.build();
                futures.add(pool.submit(() -> {
                    long[] times = new long[tokens];
                    go.await();
                    Iterator<GenerateResponse> it = stub.withDeadlineAfter(30, TimeUnit.MINUTES).generate(req);
                    int i = 0;
                    while (it.hasNext()) {
                        GenerateResponse r = it.next();
                        for (int k = 0; k < r.getTokenIdsCount(); k++) times[i++] = System.nanoTime();
                    }
                    return times;
                }));
            }
            go.countDown();
            List<long[]> all = new ArrayList<>();
            for (Future<long[]> f : futures) all.add(f.get(30, TimeUnit.MINUTES));
            long start = Long.MAX_VALUE, end = Long.MIN_VALUE;
            List<Long> gaps = new ArrayList<>();
            for (long[] t : all) {
                start = Math.min(start, t[0]);
                end = Math.max(end, t[t.length - 1]);
                for (int i = 1; i < t.length; i++) gaps.add(t[i] - t[i - 1]);
            }
            gaps.sort(null);
            double mean = gaps.stream().mapToLong(Long::longValue).average().orElse(0) / 1e6;
            double seconds = (end - start) / 1e9;
            return new Result((long) n * (tokens - 1) / seconds, mean, gaps.get(gaps.size() / 2) / 1e6,
                    gaps.get((int) Math.min(gaps.size() - 1, Math.round(gaps.size() * 0.99))) / 1e6);
        } finally {
            pool.shutdownNow();
        }
    }
}
