package io.moeserve.system;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.helm.Charts;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.runtime.expert.ExpertSet;
import io.moeserve.runtime.family.Architecture;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real Prometheus server scrapes a router and two expert groups under load, and the exact queries the autoscalers
 * run (rendered from the chart: the prometheus-adapter rule behind each group's HPA, expanded for the group's pods,
 * and the group's KEDA trigger) give per-group values that rise with that group's load and fall when it stops.
 *
 * <p>The groups' loads differ because of what they host, not because of the prompts (which experts a prompt picks
 * cannot be steered): "low" hosts six experts of every layer on two pods, "high" the other two on one pod, so about
 * three quarters of the (token, expert) pairs go to "low", split over its two pods. What each group really received
 * is counted independently by the router (pairs its gates sent to each expert) and by the pods themselves; the
 * queries must reproduce those amounts group by group (so a query that mixed groups, missed a pod or lost a label
 * would fail), every value must be zero before the load, and zero again once the load has left the queries' 1-minute
 * window. The static scrape targets carry the {@code namespace} and {@code pod} labels Kubernetes discovery gives,
 * with pod names as the group's Deployment would have them.
 */
class PrometheusAutoscalingIT {
    private static final Map<String, String> GROUPS = new LinkedHashMap<>(Map.of("low", "*:0-5", "high", "*:6-7"));
    private static final Map<String, Integer> REPLICAS = Map.of("low", 2, "high", 1);
    private static final Duration LOAD = Duration.ofSeconds(20);
    private static final Duration WINDOW = Duration.ofMinutes(1);
    private static final Pattern ROUTED = Pattern.compile("^moe_router_expert_tokens_total\\{([^}]*)} (\\S+)$", Pattern.MULTILINE);

    @TempDir
    Path work;

    @Test
    void theAutoscalersQueriesFollowEachGroupsLoad() throws Exception {
        Map<String, Map<String, AutoscalerQueries.Group>> queries = new LinkedHashMap<>();
        // the chart's default metric and target, and tokens/s with a target in pairs per second per pod
        queries.put("utilization", AutoscalerQueries.render(work, GROUPS, "utilization", null));
        queries.put("tokensPerSecond", AutoscalerQueries.render(work, GROUPS, "tokensPerSecond", 100.0));
        Path model = Models.small(Architecture.MIXTRAL);
        try (Deployment d = new Deployment(model, "mixtral")) {
            Map<String, List<String>> pods = new LinkedHashMap<>();
            List<PrometheusServer.Target> targets = new ArrayList<>();
            for (String g : GROUPS.keySet()) {
                String deployment = queries.get("utilization").get(g).deployment();
                for (int i = 0; i < REPLICAS.get(g); i++) {
                    ServiceProcess p = d.startExpert(g, GROUPS.get(g));
                    String pod = deployment + "-" + i;
                    pods.computeIfAbsent(g, k -> new ArrayList<>()).add(pod);
                    targets.add(new PrometheusServer.Target(p.httpPort, Charts.NAMESPACE, pod));
                }
            }
            d.startRouter(Map.of());
            targets.add(new PrometheusServer.Target(d.router.httpPort, Charts.NAMESPACE, Charts.RELEASE + "-moe-serve-router-0"));
            try (PrometheusServer prom = PrometheusServer.start(work.resolve("prometheus"), targets, Duration.ofSeconds(1))) {
                d.awaitReady();
                awaitSamples(prom, pods.values().stream().flatMap(List::stream).toList());

                Map<String, Double> routed0 = routedPairs(d), tokens0 = podCounter(d, "moe_expert_pod_tokens_total"), busy0 = podCounter(d,
                        "moe_expert_pod_busy_seconds_total");
                double start = now();
                int requests = load(d);
                double stop = now();
                Map<String, Double> routed = minus(routedPairs(d), routed0), tokens = minus(podCounter(d, "moe_expert_pod_tokens_total"), tokens0),
                        busy = minus(podCounter(d, "moe_expert_pod_busy_seconds_total"), busy0);
                double peak = stop + 2.5, after = stop + WINDOW.toSeconds() + 2.5;
                sleepUntil(peak);
                Map<String, Double> atStart = evaluate(prom, queries, pods, start), atPeak = evaluate(prom, queries, pods, peak);
                sleepUntil(after);
                Map<String, Double> atEnd = evaluate(prom, queries, pods, after);
                report(prom, queries, pods, start, stop, after, requests, routed, tokens, busy, atStart, atPeak, atEnd);

                double routedAll = routed.values().stream().mapToDouble(Double::doubleValue).sum();
                for (String g : GROUPS.keySet()) {
                    // what the group really received, counted by the router and by the group's own pods
                    assertTrue(routed.get(g) > 0.1 * routedAll, g + " received " + routed.get(g) + " of " + routedAll + " pairs");
                    assertWithin(tokens.get(g), routed.get(g), 0.10, g + ": pairs computed by its pods vs routed to it");
                    for (String metric : queries.keySet()) {
                        String key = metric + " " + g;
                        assertEquals(0.0, atStart.get(key + " keda"), 1e-9, key + ": nothing before the load");
                        double value = atPeak.get(key + " keda");
                        // the same data seen per pod, as the HPA sees it: exactly the group's pods, summing to the group's value
                        assertEquals(pods.get(g).size(), atPeak.get(key + " hpa pods"), 0.0, key + ": one HPA value per pod of the group");
                        assertWithin(atPeak.get(key + " hpa sum"), value, 1e-6, key + ": HPA per-pod values sum to the KEDA group value");
                        // rate over the 1-minute window of what the group did during the load
                        double truth = (metric.equals("utilization") ? busy.get(g) : tokens.get(g)) / WINDOW.toSeconds();
                        assertWithin(value, truth, 0.15, key + ": the query's value vs the group's own counters over the window");
                        assertEquals(0.0, atEnd.get(key + " keda"), 1e-9, key + ": back to zero once the load left the window");
                        assertEquals(0.0, atEnd.get(key + " hpa sum"), 1e-9, key + ": per pod too");
                    }
                    if (pods.get(g).size() > 1) {
                        double sum = atPeak.get("tokensPerSecond " + g + " hpa sum"), min = atPeak.get("tokensPerSecond " + g + " hpa min");
                        assertTrue(min > 0.2 * sum, g + ": the router spreads the group's calls over its pods (smallest share " + min / sum + ")");
                    }
                }
                // per-group values follow per-group load: the groups' token rates stand in the ratio of the pairs the router sent them
                double measured = atPeak.get("tokensPerSecond low keda") / atPeak.get("tokensPerSecond high keda");
                assertWithin(measured, routed.get("low") / routed.get("high"), 0.15, "low:high tokens/s vs pairs routed");
            }
        }
    }

    /**
     * Every query at one instant, flat: "{metric} {group} keda" (the group's value), and for the HPA's per-pod query
     * "{metric} {group} hpa pods|sum|min" and "{metric} {group} hpa {pod}".
     */
    private static Map<String, Double> evaluate(PrometheusServer prom, Map<String, Map<String, AutoscalerQueries.Group>> queries,
                                                Map<String, List<String>> pods, double at) {
        Map<String, Double> out = new LinkedHashMap<>();
        for (var m : queries.entrySet()) {
            for (var g : m.getValue().entrySet()) {
                String key = m.getKey() + " " + g.getKey();
                Map<String, Double> group = prom.values(g.getValue().kedaQuery(), at, "");
                if (group.size() != 1) throw new AssertionError(key + ": the KEDA query must return one value, got " + group + " ("
                        + g.getValue().kedaQuery() + ")");
                out.put(key + " keda", group.values().iterator().next());
                Map<String, Double> perPod = prom.values(g.getValue().hpaQuery(pods.get(g.getKey())), at, "pod");
                if (!pods.get(g.getKey()).containsAll(perPod.keySet())) {
                    throw new AssertionError(key + ": the HPA query returned pods " + perPod.keySet() + ", not the group's " + pods.get(g.getKey()));
                }
                out.put(key + " hpa pods", (double) perPod.size());
                out.put(key + " hpa sum", perPod.values().stream().mapToDouble(Double::doubleValue).sum());
                out.put(key + " hpa min", perPod.values().stream().mapToDouble(Double::doubleValue).min().orElse(0));
                perPod.forEach((pod, v) -> out.put(key + " hpa " + pod, v));
            }
        }
        return out;
    }

    /** What the test saw, for the log (and BENCHMARKS.md): the values, the HPA's decisions, and the curves. */
    private static void report(PrometheusServer prom, Map<String, Map<String, AutoscalerQueries.Group>> queries, Map<String, List<String>> pods,
                               double start, double stop, double after, int requests, Map<String, Double> routed, Map<String, Double> tokens,
                               Map<String, Double> busy, Map<String, Double> atStart, Map<String, Double> atPeak, Map<String, Double> atEnd) {
        StringBuilder r = new StringBuilder();
        r.append(String.format("load: %d requests in %.1f s; pairs routed %s, computed by the pods %s, busy seconds %s%n", requests, stop - start,
                routed, tokens, busy));
        for (var m : queries.entrySet()) {
            for (var g : m.getValue().entrySet()) {
                String key = m.getKey() + " " + g.getKey();
                AutoscalerQueries.Group q = g.getValue();
                double perPod = atPeak.get(key + " hpa sum") / pods.get(g.getKey()).size();
                r.append(String.format("%s: before %.4f, peak %.4f, a window after %.4f; "
                        + "HPA per pod %s -> average %.4f, target %.3f: %d -> %d pod(s)%n",
                        key, atStart.get(key + " keda"), atPeak.get(key + " keda"), atEnd.get(key + " keda"),
                        perPodValues(atPeak, key, pods.get(g.getKey())), perPod, q.target(), pods.get(g.getKey()).size(),
                        (int) Math.ceil(pods.get(g.getKey()).size() * perPod / q.target())));
                r.append("  KEDA: ").append(q.kedaQuery()).append("\n  HPA:  ").append(q.hpaQuery(pods.get(g.getKey()))).append('\n');
            }
        }
        for (String g : GROUPS.keySet()) {
            r.append("utilization ").append(g).append(" every 4 s from the load's start:");
            for (var series : prom.queryRange(queries.get("utilization").get(g).kedaQuery(), start, after, 4)) {
                for (var v : series.path("values")) r.append(String.format(" %.3f", v.get(1).asDouble()));
            }
            r.append('\n');
        }
        System.out.print(r);
    }

    private static String perPodValues(Map<String, Double> at, String key, List<String> pods) {
        List<String> out = new ArrayList<>();
        for (String p : pods) out.add(String.format("%.4f", at.getOrDefault(key + " hpa " + p, Double.NaN)));
        return out.toString();
    }

    private static int load(Deployment d) throws InterruptedException {
        long deadline = System.nanoTime() + LOAD.toNanos();
        AtomicInteger requests = new AtomicInteger();
        List<Thread> clients = new ArrayList<>();
        List<Throwable> failures = java.util.Collections.synchronizedList(new ArrayList<>());
        for (int c = 0; c < 2; c++) {
            Random random = new Random(17 + c);
            clients.add(Thread.ofPlatform().name("load-" + c).start(() -> {
                try {
                    while (System.nanoTime() < deadline) {
                        int[] prompt = random.ints(12, 5, 2000).toArray();
                        GenerateRequest req = Deployment.greedy(d.modelId, prompt, 16);
                        d.stub().generate(req).forEachRemaining(r -> { });
                        requests.incrementAndGet();
                    }
                } catch (Throwable t) {
                    failures.add(t);
                }
            }));
        }
        for (Thread t : clients) t.join();
        if (!failures.isEmpty()) throw new AssertionError("load failed", failures.getFirst());
        return requests.get();
    }

    /** Pairs the router's gates sent to each group's experts (moe_router_expert_tokens_total, by layer and expert). */
    private static Map<String, Double> routedPairs(Deployment d) {
        Map<String, Double> out = new TreeMap<>();
        for (String g : GROUPS.keySet()) out.put(g, 0.0);
        Matcher m = ROUTED.matcher(d.router.get("/q/metrics"));
        while (m.find()) {
            int layer = Integer.parseInt(label(m.group(1), "layer")), expert = Integer.parseInt(label(m.group(1), "expert"));
            for (String g : GROUPS.keySet()) if (ExpertSet.parse(GROUPS.get(g)).hosts(layer, expert)) out.merge(g, Double.parseDouble(m.group(2)),
                    Double::sum);
        }
        return out;
    }

    /** A pod counter summed over each group's pods, read from the pods directly. */
    private static Map<String, Double> podCounter(Deployment d, String name) {
        Map<String, Double> out = new TreeMap<>();
        Pattern p = Pattern.compile("^" + name + "\\{[^}]*} (\\S+)$", Pattern.MULTILINE);
        for (var e : d.experts.entrySet()) {
            double sum = 0;
            for (ServiceProcess s : e.getValue()) {
                Matcher m = p.matcher(s.get("/q/metrics"));
                if (!m.find()) throw new AssertionError(s.name + " exports no " + name);
                sum += Double.parseDouble(m.group(1));
            }
            out.put(e.getKey(), sum);
        }
        return out;
    }

    private static String label(String labels, String name) {
        Matcher m = Pattern.compile(name + "=\"([^\"]*)\"").matcher(labels);
        if (!m.find()) throw new AssertionError("no " + name + " in " + labels);
        return m.group(1);
    }

    /** Until Prometheus holds a few samples of every expert pod's series (a rate needs two). */
    private static void awaitSamples(PrometheusServer prom, List<String> pods) {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        String q = "count_over_time(moe_expert_pod_busy_seconds_total{namespace=\"" + Charts.NAMESPACE + "\"}[1m])";
        while (System.nanoTime() < deadline) {
            Map<String, Double> samples = prom.values(q, now(), "pod");
            if (samples.keySet().containsAll(pods) && samples.values().stream().allMatch(v -> v >= 3)) return;
            ServiceProcess.sleep(250);
        }
        throw new AssertionError("Prometheus did not scrape every expert pod: " + prom.values(q, now(), "pod") + "\n" + prom.logText());
    }

    private static Map<String, Double> minus(Map<String, Double> a, Map<String, Double> b) {
        Map<String, Double> out = new TreeMap<>();
        a.forEach((k, v) -> out.put(k, v - b.getOrDefault(k, 0.0)));
        return out;
    }

    private static void assertWithin(double actual, double expected, double relative, String what) {
        assertTrue(Math.abs(actual - expected) <= relative * Math.abs(expected), what + ": " + actual + ", expected " + expected + " ± "
                + (100 * relative) + " %");
    }

    private static double now() {
        return System.currentTimeMillis() / 1000.0;
    }

    private static void sleepUntil(double unixSeconds) {
        long ms = (long) ((unixSeconds - now()) * 1000);
        if (ms > 0) ServiceProcess.sleep(ms);
    }
}
