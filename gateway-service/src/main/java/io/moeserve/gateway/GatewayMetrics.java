package io.moeserve.gateway;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import jakarta.inject.Inject;
import jakarta.inject.Singleton;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The gateway's generation metrics (Prometheus names in the README). Updated once per request or choice, never
 * per token.
 */
@Singleton
public class GatewayMetrics {
    private final AtomicInteger active = new AtomicInteger();
    private final MeterRegistry registry;
    private final Counter streamed;
    private final Counter whole;
    private final Counter promptTokens;
    private final Counter completionTokens;
    private final Counter cancelled;
    private final Timer firstToken;
    private final Counter retries;
    private final Counter migrations;

    @Inject
    GatewayMetrics(MeterRegistry registry) {
        this.registry = registry;
        streamed = Counter.builder("moe.gateway.generations").tag("stream", "true")
                .description("Generation requests sent to the router").register(registry);
        whole = Counter.builder("moe.gateway.generations").tag("stream", "false")
                .description("Generation requests sent to the router").register(registry);
        promptTokens = Counter.builder("moe.gateway.prompt.tokens").description("Prompt tokens of finished requests")
                .register(registry);
        completionTokens = Counter.builder("moe.gateway.completion.tokens")
                .description("Generated tokens of finished requests").register(registry);
        cancelled = Counter.builder("moe.gateway.cancelled").description("Generations cancelled because the client "
                + "went away").register(registry);
        firstToken = Timer.builder("moe.gateway.time.to.first.token")
                .description("From the request's arrival at the router to its first message")
                .publishPercentileHistogram().minimumExpectedValue(Duration.ofMillis(5))
                .maximumExpectedValue(Duration.ofMinutes(2)).register(registry);
        registry.gauge("moe.gateway.active.generations", active);
        retries = Counter.builder("moe.gateway.router.restarts").tag("kind", "retry")
                .description("Router calls restarted on another router: before their first token (retry) or after "
                        + "(migration)").register(registry);
        migrations = Counter.builder("moe.gateway.router.restarts").tag("kind", "migration")
                .description("Router calls restarted on another router: before their first token (retry) or after "
                        + "(migration)").register(registry);
    }

    public void runStarted(boolean stream) {
        active.incrementAndGet();
        (stream ? streamed : whole).increment();
    }

    public void firstToken(long nanos) {
        firstToken.record(nanos, TimeUnit.NANOSECONDS);
    }

    public void runFinished(int prompt, int completion) {
        active.decrementAndGet();
        promptTokens.increment(prompt);
        completionTokens.increment(completion);
    }

    public void runFailed(int httpStatus) {
        active.decrementAndGet();
        registry.counter("moe.gateway.failed", "status", Integer.toString(httpStatus)).increment();
    }

    /** A choice's router call failed and was started again on another router, after output ({@code migration}) or before. */
    public void restarted(boolean migration) {
        (migration ? migrations : retries).increment();
    }

    public void runCancelled() {
        active.decrementAndGet();
        cancelled.increment();
    }
}
