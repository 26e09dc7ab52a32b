package io.moeserve.system;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.runtime.family.Architecture;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Expert pods going away under load, as real processes: a replica scaled down (SIGTERM) drains without losing a
 * request; a replica killed (SIGKILL) mid-stream is retried around; when the only pod of some experts is gone,
 * requests end with a clear error, never a hang.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ExpertFaultsIT {
    private static final Path MODEL = Models.small(Architecture.MIXTRAL);
    private Deployment d;

    @BeforeAll
    void start() {
        d = new Deployment(MODEL, "mixtral");
        d.startExpert("low", "*:0-3");
        d.startExpert("low", "*:0-3");
        d.startExpert("low", "*:0-3");
        d.startExpert("high", "*:4-7");
        d.startRouter(Map.of("moe.router.experts.call-timeout", "3s"));
        d.awaitReady();
    }

    @AfterAll
    void stop() {
        d.close();
    }

    private static int[] prompt(int i) {
        int[] p = new int[6 + i];
        for (int j = 0; j < p.length; j++) p[j] = (j * 131 + i * 17 + 3) % 4096;
        return p;
    }

    /** Streams n requests concurrently; once each has produced a few tokens, runs {@code fault}; returns outputs. */
    private List<int[]> underLoad(int n, int tokens, Runnable fault) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(n);
        java.util.concurrent.CountDownLatch started = new java.util.concurrent.CountDownLatch(n);
        try {
            List<Future<int[]>> results = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int[] p = prompt(i);
                results.add(pool.submit(() -> {
                    List<Integer> out = new ArrayList<>();
                    Iterator<GenerateResponse> it = d.stub().generate(Deployment.greedy(d.modelId, p, tokens));
                    while (it.hasNext()) {
                        out.addAll(it.next().getTokenIdsList());
                        if (out.size() == 3) started.countDown();
                    }
                    return out.stream().mapToInt(Integer::intValue).toArray();
                }));
            }
            assertTrue(started.await(120, TimeUnit.SECONDS), "streams started");
            fault.run();
            List<int[]> out = new ArrayList<>();
            for (Future<int[]> f : results) out.add(f.get(300, TimeUnit.SECONDS));
            return out;
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    @Order(1)
    void scalingDownAReplicaUnderLoadLosesNoRequest() throws Exception {
        ServiceProcess leaving = d.experts.get("low").get(2);
        List<int[]> out = underLoad(4, 60, leaving::terminate);
        for (int i = 0; i < out.size(); i++) {
            assertArrayEquals(Models.inProcess(MODEL, prompt(i), 60), out.get(i), "stream " + i + " during the scale-down");
        }
        assertTrue(leaving.waitFor(Duration.ofSeconds(60)), "the drained pod exits by itself");
        String log = leaving.logText();
        assertTrue(log.contains("draining: refusing new calls"), log);
        assertTrue(!log.contains("drain timed out"), "in-flight calls finished before the exit:\n" + log);
    }

    @Test
    @Order(2)
    void killingAReplicaMidStreamDoesNotBreakTheStreams() throws Exception {
        ServiceProcess victim = d.experts.get("low").get(1);
        List<int[]> out = underLoad(3, 40, victim::kill);
        for (int i = 0; i < out.size(); i++) {
            assertArrayEquals(Models.inProcess(MODEL, prompt(i), 40), out.get(i), "stream " + i + " across the crash");
        }
        assertTrue(d.router.get("/q/metrics").contains("moe_router_expert_retries_total{group=\"low\"}"));
    }

    @Test
    @Order(3)
    void stoppingTheOnlyPodOfSomeExpertsEndsRequestsWithAClearError() {
        // Last: afterwards group "high" has no pod at all.
        d.experts.get("high").getFirst().kill();
        long t0 = System.nanoTime();
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> d.generate(prompt(1), 20));
        assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
        assertTrue(e.getStatus().getDescription().contains("expert group high (*:4-7)"), e.getStatus().getDescription());
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(30), "fails fast");
        assertTrue(d.router.isAlive(), "the router stays up");
        assertTrue(d.router.get("/q/health/ready").contains("0 of 1 pods ready"));
    }
}
