package io.moeserve.system;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.family.Architecture;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;

/**
 * No single router, as a user meets it, real processes on loopback ({@link RouterKillDriver}): a gateway over two
 * all-in-one routers balances streams over both; {@code kill -9} of one while 8 streams run fails none of them, and
 * each stream's text equals the one it got with both routers up (greedy), the streams on the dead router having
 * resumed on the other (request migration). A second gateway, which has not probed the routers since they were
 * both up, sends a request to the dead router first and retries it on the live one.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class RouterFailoverIT {
    private static final int STREAMS = 8;
    private RouterKillDriver d;
    /** Asks the routers only at readiness, so it cannot know the router died until a call on it fails. */
    private ServiceProcess unaware;
    private final List<String> expected = new ArrayList<>();
    /** The longest gap between two chunks of a stream in the uninterrupted run, ms. */
    private double uninterruptedGap;

    @BeforeAll
    void start() {
        d = new RouterKillDriver(Models.small(Architecture.MIXTRAL), 1);
        // Neither probes nor re-describes: its readiness answer serves every later request's validation. No prefix
        // affinity either: the prompts would all prefer one router by their hash, and the test needs the dead one tried.
        unaware = d.startGateway("gateway-unaware", Map.of("moe.gateway.router.health-period", "1h",
                "moe.gateway.describe-cache-ttl", "1h", "moe.gateway.router.prefix-affinity-tokens", "0"));
        d.awaitReady();
    }

    @AfterAll
    void stop() {
        if (d != null) d.close();
    }

    private static double metric(ServiceProcess p, String regex) {
        Matcher m = Pattern.compile("(?m)^" + regex + " (\\S+)$").matcher(p.get("/q/metrics"));
        return m.find() ? Double.parseDouble(m.group(1)) : 0;
    }

    private List<RouterKillDriver.Outcome> streams(CountDownLatch everyStreamGoing) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(STREAMS);
        try {
            List<Future<RouterKillDriver.Outcome>> futures = new ArrayList<>();
            for (int i = 0; i < STREAMS; i++) {
                int stream = i;
                futures.add(pool.submit(() -> RouterKillDriver.stream(d.gateway, stream, n -> {
                    if (n == 1) everyStreamGoing.countDown();
                })));
            }
            List<RouterKillDriver.Outcome> out = new ArrayList<>();
            for (Future<RouterKillDriver.Outcome> f : futures) out.add(f.get(80, TimeUnit.SECONDS));
            return out;
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    @Order(1)
    void theGatewayBalancesStreamsOverBothRouters() throws Exception {
        String tokens = "moe_router_generated_tokens_total";
        double a0 = metric(d.routerA, tokens);
        double b0 = metric(d.routerB, tokens);
        for (RouterKillDriver.Outcome o : streams(new CountDownLatch(STREAMS))) {
            assertTrue(o.ok(), o.toString());
            expected.add(o.text());
            uninterruptedGap = Math.max(uninterruptedGap, o.longestGapMs());
        }
        double a = metric(d.routerA, tokens) - a0;
        double b = metric(d.routerB, tokens) - b0;
        assertEquals(STREAMS * RouterKillDriver.MAX_TOKENS, a + b, 0.0, "every token came from one of the two");
        assertTrue(a >= 2 * RouterKillDriver.MAX_TOKENS && b >= 2 * RouterKillDriver.MAX_TOKENS,
                "least outstanding requests spreads 8 streams over both routers: " + a + " and " + b + " tokens");
    }

    @Test
    @Order(2)
    void killingOneRouterMidStreamFailsNoStreamAndChangesNoText() throws Exception {
        CountDownLatch going = new CountDownLatch(STREAMS);
        ExecutorService killer = Executors.newSingleThreadExecutor();
        long[] killedAt = {Long.MAX_VALUE};
        Future<Boolean> killed = killer.submit(() -> {
            if (!going.await(60, TimeUnit.SECONDS)) return false;
            killedAt[0] = System.nanoTime();
            d.routerA.kill();
            return true;
        });
        List<RouterKillDriver.Outcome> outcomes = streams(going);
        killer.shutdown();
        assertTrue(killed.get(), "the router was killed once every stream had its first token");
        assertTrue(!d.routerA.isAlive());
        for (int i = 0; i < STREAMS; i++) {
            RouterKillDriver.Outcome o = outcomes.get(i);
            assertTrue(o.ok(), "stream " + i + " failed: " + o);
            assertEquals(expected.get(i), o.text(), "stream " + i + " continued with the same text, nothing repeated or lost");
        }
        double migrated = metric(d.gateway, "moe_gateway_router_restarts_total\\{kind=\"migration\"[^}]*}");
        assertTrue(migrated >= 1, "streams on the killed router resumed on the other: " + migrated);
        // BENCHMARKS.md's figures: the longest gap between two chunks of a stream that ran across the kill.
        double across = outcomes.stream().filter(o -> o.spans(killedAt[0])).mapToDouble(RouterKillDriver.Outcome::longestGapMs)
                .max().orElse(0);
        long spanning = outcomes.stream().filter(o -> o.spans(killedAt[0])).count();
        System.out.printf(java.util.Locale.ROOT, "router kill: %d streams (%d across the kill), 0 failed, %.0f migrated; longest chunk gap"
                + " %.0f ms across the kill, %.0f ms in the uninterrupted run%n", STREAMS, spanning, migrated, across, uninterruptedGap);
    }

    @Test
    @Order(3)
    void aRequestWhoseFirstRouterIsDeadIsRetriedOnTheOther() {
        for (int i = 0; i < 4; i++) {
            RouterKillDriver.Outcome o = RouterKillDriver.complete(unaware, i);
            assertEquals(200, o.status(), o.error());
            assertEquals(expected.get(i), o.text());
        }
        double retried = metric(unaware, "moe_gateway_router_restarts_total\\{kind=\"retry\"[^}]*}");
        assertTrue(retried >= 1, "the dead router was tried first and the request retried: " + retried);
        assertTrue(unaware.get("/q/health/ready").contains("\"UP\""), "one router is enough to be ready");
    }
}
