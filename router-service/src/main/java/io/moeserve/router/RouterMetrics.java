package io.moeserve.router;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * The router's Prometheus metrics (names in docs/architecture.md). Meters are made once and held in fields or
 * arrays indexed by expert group, so recording on the step path is a field load and an add.
 */
final class RouterMetrics {
    private final Counter[] calls;
    private final Timer[] callSeconds;
    private final Counter[] retries;
    private final Counter[] failures;
    private final Counter[] masked;
    private final Counter sent;
    private final Counter received;
    private final Counter generated;
    private final Timer step;
    private final Timer layerWait;
    private final Timer layerSend;
    private final Counter rejectedQueueFull;
    private final Counter rejectedTooLong;
    private final Counter rejectedInvalid;
    private final Counter preemptions;

    RouterMetrics(MeterRegistry registry, List<String> groups, Supplier<Number> running, Supplier<Number> waiting,
                  Supplier<Number> freeKvTokens, Supplier<Number> usedKvBlocks, Supplier<Number> freeKvBlocks) {
        int n = groups.size();
        calls = new Counter[n];
        callSeconds = new Timer[n];
        retries = new Counter[n];
        failures = new Counter[n];
        masked = new Counter[n];
        for (int g = 0; g < n; g++) {
            String name = groups.get(g);
            calls[g] = Counter.builder("moe.router.expert.calls").description("Calls to the group's pods").tag("group", name).register(registry);
            callSeconds[g] = Timer.builder("moe.router.expert.call").description("Expert call latency, retries included")
                    .tag("group", name).publishPercentileHistogram().minimumExpectedValue(Duration.ofNanos(50_000))
                    .maximumExpectedValue(Duration.ofSeconds(30)).register(registry);
            retries[g] = Counter.builder("moe.router.expert.retries").description("Calls retried on another replica")
                    .tag("group", name).register(registry);
            failures[g] = Counter.builder("moe.router.expert.failures").description("Calls that failed on every replica")
                    .tag("group", name).register(registry);
            masked[g] = Counter.builder("moe.router.expert.masked.pairs")
                    .description("(token, expert) pairs masked because the group had no live pod (degraded mode)")
                    .tag("group", name).register(registry);
        }
        sent = Counter.builder("moe.router.wire.bytes").description("Payload bytes of expert calls").baseUnit("bytes")
                .tag("direction", "sent").register(registry);
        received = Counter.builder("moe.router.wire.bytes").description("Payload bytes of expert calls").baseUnit("bytes")
                .tag("direction", "received").register(registry);
        generated = Counter.builder("moe.router.generated.tokens").description("Tokens sampled").register(registry);
        step = Timer.builder("moe.router.step").description("Forward step time").publishPercentileHistogram()
                .minimumExpectedValue(Duration.ofNanos(100_000)).maximumExpectedValue(Duration.ofSeconds(60)).register(registry);
        layerWait = Timer.builder("moe.router.expert.layer").description("Time a step waits for every group's answer to one MoE layer")
                .publishPercentileHistogram().minimumExpectedValue(Duration.ofNanos(50_000))
                .maximumExpectedValue(Duration.ofSeconds(30)).register(registry);
        layerSend = Timer.builder("moe.router.expert.send").description("Time a step spends handing one MoE layer's calls to gRPC")
                .register(registry);
        Gauge.builder("moe.router.sequences", running).tag("state", "running").description("Sequences admitted").register(registry);
        Gauge.builder("moe.router.sequences", waiting).tag("state", "waiting").description("Sequences queued for admission").register(registry);
        Gauge.builder("moe.router.kv.cache.free.tokens", freeKvTokens).description("KV-cache positions in blocks no sequence holds")
                .register(registry);
        Gauge.builder("moe.router.kv.cache.blocks", usedKvBlocks).tag("state", "used").description("KV-cache blocks held by sequences")
                .register(registry);
        Gauge.builder("moe.router.kv.cache.blocks", freeKvBlocks).tag("state", "free").description("KV-cache blocks in the free pool")
                .register(registry);
        preemptions = Counter.builder("moe.router.preemptions")
                .description("Sequences preempted when the KV cache ran out (recomputed when admitted again)").register(registry);
        rejectedQueueFull = rejected(registry, "queue_full");
        rejectedTooLong = rejected(registry, "too_long");
        rejectedInvalid = rejected(registry, "invalid");
    }

    /**
     * The prefix cache's meters: blocks holding a cached prefix, and prompt tokens looked up and found (the hit
     * rate is their ratio), read from the engine's published counts. Function meters hold their object weakly, so
     * they are given the engine itself, which lives as long as the router, not a lambda nobody else holds.
     */
    static void prefixCache(MeterRegistry registry, GenerationEngine engine) {
        Gauge.builder("moe.router.prefix.cache.blocks", engine, GenerationEngine::cachedBlocks)
                .description("KV-cache blocks holding a cached prefix, held by a sequence or evictable").register(registry);
        FunctionCounter.builder("moe.router.prefix.cache.queried.tokens", engine, GenerationEngine::prefixQueriedTokens)
                .description("Prompt tokens looked up in the prefix cache").register(registry);
        FunctionCounter.builder("moe.router.prefix.cache.hit.tokens", engine, GenerationEngine::prefixHitTokens)
                .description("Prompt tokens found in the prefix cache, whose keys and values were not computed again")
                .register(registry);
    }

    private static Counter rejected(MeterRegistry registry, String reason) {
        return Counter.builder("moe.router.rejected").description("Requests refused").tag("reason", reason).register(registry);
    }

    void expertCall(int group, long nanos) {
        calls[group].increment();
        callSeconds[group].record(nanos, TimeUnit.NANOSECONDS);
    }

    void expertLayer(long nanos) {
        layerWait.record(nanos, TimeUnit.NANOSECONDS);
    }

    void expertSend(long nanos) {
        layerSend.record(nanos, TimeUnit.NANOSECONDS);
    }

    void expertRetry(int group) {
        retries[group].increment();
    }

    void expertFailure(int group) {
        calls[group].increment();
        failures[group].increment();
    }

    void expertMasked(int group, int pairs) {
        masked[group].increment(pairs);
    }

    void wireBytesSent(long bytes) {
        sent.increment(bytes);
    }

    void wireBytesReceived(long bytes) {
        received.increment(bytes);
    }

    void tokenGenerated() {
        generated.increment();
    }

    void step(long nanos) {
        step.record(nanos, TimeUnit.NANOSECONDS);
    }

    void rejectedQueueFull() {
        rejectedQueueFull.increment();
    }

    void rejectedTooLong() {
        rejectedTooLong.increment();
    }

    void rejectedInvalid() {
        rejectedInvalid.increment();
    }

    void preempted() {
        preemptions.increment();
    }
}
