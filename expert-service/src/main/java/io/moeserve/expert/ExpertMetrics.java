package io.moeserve.expert;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.moeserve.runtime.expert.CheckpointExpertStore;
import io.moeserve.runtime.expert.ExpertComputeListener;
import io.moeserve.runtime.expert.ExpertResidency;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * The pod's Prometheus metrics (names in docs/architecture.md): per hosted expert its tokens, busy time and batch
 * sizes, and per pod its calls, tokens, busy time, queue wait and queue depth.
 *
 * <p>Meters are created once, when the experts are loaded, and kept in arrays indexed by (layer, expert), so the
 * compute thread records with a field load and an add: no lookup, tag building or allocation per batch.
 */
final class ExpertMetrics implements ExpertComputeListener {
    private final Counter[][] tokens;
    private final Counter[][] busySeconds;
    private final DistributionSummary[][] batchTokens;
    private final Counter podTokens;
    private final Counter podCalls;
    private final Counter podBusySeconds;
    private final Timer queueWait;
    private final Counter abandoned;
    private final LoadWindow window;
    private final MeterRegistry registry;

    ExpertMetrics(MeterRegistry registry, CheckpointExpertStore store, LoadWindow window) {
        this.registry = registry;
        this.window = window;
        int layers = store.numLayers();
        this.tokens = new Counter[layers][];
        this.busySeconds = new Counter[layers][];
        this.batchTokens = new DistributionSummary[layers][];
        for (int l = 0; l < layers; l++) {
            int[] ids = store.hostedExperts(l);
            if (ids.length == 0) continue;
            tokens[l] = new Counter[store.numExperts()];
            busySeconds[l] = new Counter[store.numExperts()];
            batchTokens[l] = new DistributionSummary[store.numExperts()];
            for (int e : ids) {
                String layer = Integer.toString(l);
                String expert = Integer.toString(e);
                tokens[l][e] = Counter.builder("moe.expert.tokens").description("Tokens computed by the expert")
                        .tags("layer", layer, "expert", expert).register(registry);
                busySeconds[l][e] = Counter.builder("moe.expert.busy.seconds").description("Time spent in the expert's FFN")
                        .baseUnit("seconds").tags("layer", layer, "expert", expert).register(registry);
                batchTokens[l][e] = DistributionSummary.builder("moe.expert.batch.tokens")
                        .description("Tokens per batched FFN call of the expert").tags("layer", layer, "expert", expert)
                        .register(registry);
            }
        }
        this.podTokens = Counter.builder("moe.expert.pod.tokens").description("(token, expert) pairs computed by the pod")
                .register(registry);
        this.podCalls = Counter.builder("moe.expert.pod.calls").description("Calls answered").register(registry);
        this.podBusySeconds = Counter.builder("moe.expert.pod.busy.seconds").baseUnit("seconds")
                .description("Compute time; its rate is the pod's utilisation").register(registry);
        this.queueWait = Timer.builder("moe.expert.pod.queue.wait").description("Time a call waited before its batch started")
                .publishPercentileHistogram().minimumExpectedValue(Duration.ofNanos(10_000))
                .maximumExpectedValue(Duration.ofSeconds(30)).register(registry);
        this.abandoned = Counter.builder("moe.expert.pod.abandoned.calls")
                .description("Calls skipped because the caller had given up on them (deadline passed, retried elsewhere)")
                .register(registry);
    }

    /**
     * The offloaded experts' counters and gauges, read from the resident set (only when offloading is on). No
     * prefetch counters: a pod sees one layer's hidden states and no gate, and routers send no predictions yet.
     */
    void watchOffload(ExpertResidency residency) {
        FunctionCounter.builder("moe.expert.offload.hits", residency, ExpertResidency::hits)
                .description("Experts a call needed that were resident").register(registry);
        FunctionCounter.builder("moe.expert.offload.misses", residency, ExpertResidency::misses)
                .description("Experts a call needed that were read from the mapped checkpoint").register(registry);
        FunctionCounter.builder("moe.expert.offload.evictions", residency, ExpertResidency::evictions)
                .description("Experts dropped from memory to make room").register(registry);
        Gauge.builder("moe.expert.offload.resident.bytes", residency, ExpertResidency::residentBytes).baseUnit("bytes")
                .description("Expert weight bytes resident now").register(registry);
        Gauge.builder("moe.expert.offload.budget.bytes", residency, ExpertResidency::budgetBytes).baseUnit("bytes")
                .description("Most expert weight bytes kept resident").register(registry);
    }

    /** The gauges of the pod's queue, read from the computer that records into these metrics. */
    void watchQueue(Supplier<Number> queuedTokens, Supplier<Number> inFlightCalls) {
        Gauge.builder("moe.expert.pod.queued.tokens", queuedTokens).description("Tokens waiting now").register(registry);
        Gauge.builder("moe.expert.pod.in.flight.calls", inFlightCalls).description("Calls received and not yet answered")
                .register(registry);
    }

    @Override
    public void onExpertComputed(int layer, int expert, int count, long nanos) {
        double seconds = nanos / 1e9;
        tokens[layer][expert].increment(count);
        busySeconds[layer][expert].increment(seconds);
        batchTokens[layer][expert].record(count);
        podTokens.increment(count);
        podBusySeconds.increment(seconds);
        window.add(System.nanoTime(), count, nanos);
    }

    void callAbandoned() {
        abandoned.increment();
    }

    void callAnswered(long queueWaitNanos) {
        podCalls.increment();
        queueWait.record(queueWaitNanos, TimeUnit.NANOSECONDS);
    }
}
