package io.moeserve.router;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.proto.router.v1.RouterServiceGrpc;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.common.ResourceArg;
import io.quarkus.test.junit.QuarkusTest;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The router with its experts in pods over unary calls ({@code moe.router.experts.transport=unary}, named so that the
 * cases stay unary whichever transport is the default; RemoteExpertsOverStreamTest has them over the stream): the
 * output is the in-process output, and pods that fail, stall, drain or vanish are retried around or reported, never
 * waited on forever.
 */
@QuarkusTest
@QuarkusTestResource(value = RemoteExperts.class, restrictToAnnotatedClass = true, initArgs = @ResourceArg(name = "transport", value = "unary"))
class RemoteExpertsTest {
    private static final int[] PROMPT = RouterServiceTest.PROMPT;
    private static ManagedChannel channel;
    private static RouterServiceGrpc.RouterServiceBlockingStub stub;

    @BeforeAll
    static void connect() {
        channel = ManagedChannelBuilder.forAddress("localhost", 19181).usePlaintext().build();
        stub = RouterServiceGrpc.newBlockingStub(channel);
    }

    @AfterAll
    static void close() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    @BeforeEach
    void healthyPods() throws InterruptedException {
        for (InProcessExpertPod p : new InProcessExpertPod[] {RemoteExperts.g0a, RemoteExperts.g0b, RemoteExperts.g1}) {
            p.failNext = 0;
            p.stallMillis = 0;
            p.draining = false;
            p.describedModel = TinyRouterModel.MODEL_ID;
        }
        awaitReady();
    }

    /** Until every pod is back in use (a restarted pod is found by the next probe). */
    private static void awaitReady() throws InterruptedException {
        for (int i = 0; i < 300; i++) {
            String body = given().get("/q/health/ready").asString();
            if (body.contains("2 of 2 pods ready") && body.contains("1 of 1 pods ready")) return;
            Thread.sleep(50);
        }
        throw new AssertionError("router never ready: " + given().get("/q/health/ready").asString());
    }

    private static int[] generate(int[] prompt, int n) {
        List<GenerateResponse> out = new ArrayList<>();
        stub.withDeadlineAfter(60, TimeUnit.SECONDS).generate(RouterServiceTest.greedy(prompt, n)).forEachRemaining(out::add);
        return RouterServiceTest.tokens(out);
    }

    @Test
    void outputIsTheInProcessOutput() {
        assertArrayEquals(TinyRouterModel.reference(PROMPT, 12), generate(PROMPT, 12));
        assertTrue(RemoteExperts.g1.calls.get() > 0);
        assertTrue(RemoteExperts.g0a.calls.get() + RemoteExperts.g0b.calls.get() > 0);
        for (InProcessExpertPod p : new InProcessExpertPod[] {RemoteExperts.g0a, RemoteExperts.g0b, RemoteExperts.g1}) {
            assertEquals(0, p.streamCalls.get(), "unary, as the class asks, whatever the default");
        }
    }

    @Test
    void replicasOfAGroupShareTheWork() {
        int a = RemoteExperts.g0a.calls.get();
        int b = RemoteExperts.g0b.calls.get();
        generate(PROMPT, 20);
        int da = RemoteExperts.g0a.calls.get() - a;
        int db = RemoteExperts.g0b.calls.get() - b;
        assertTrue(da > 0 && db > 0, "both replicas served: " + da + " and " + db);
    }

    @Test
    void aFailingReplicaIsRetriedOnTheOther() {
        RemoteExperts.g0a.failNext = 1000;
        assertArrayEquals(TinyRouterModel.reference(PROMPT, 8), generate(PROMPT, 8));
        given().get("/q/metrics").then().body(containsString("moe_router_expert_retries_total{group=\"g0\"}"));
    }

    @Test
    void aStalledReplicaMissesItsDeadlineAndTheOtherAnswers() {
        RemoteExperts.g0b.stallMillis = 2000;
        long t0 = System.nanoTime();
        assertArrayEquals(TinyRouterModel.reference(PROMPT, 4), generate(PROMPT, 4));
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(20), "no waiting on the stalled pod for every call");
    }

    @Test
    void aDrainingReplicaGetsNoNewWork() throws InterruptedException {
        RemoteExperts.g0a.draining = true;
        Thread.sleep(500); // a probe sees it
        int before = RemoteExperts.g0a.calls.get();
        assertArrayEquals(TinyRouterModel.reference(PROMPT, 6), generate(PROMPT, 6));
        assertTrue(RemoteExperts.g0a.calls.get() - before <= 1, "at most the call that found it draining");
    }

    @Test
    void aPodServingAnotherModelIsNeverUsed() throws InterruptedException {
        RemoteExperts.g0b.describedModel = "another-model";
        Thread.sleep(500);
        int before = RemoteExperts.g0b.calls.get();
        generate(PROMPT, 6);
        assertEquals(before, RemoteExperts.g0b.calls.get());
        given().get("/q/health/ready").then().body(containsString("1 of 2 pods ready"));
    }

    @Test
    void whenTheOnlyPodOfAGroupIsGoneTheRequestEndsWithAClearError() throws Exception {
        RemoteExperts.g1.kill();
        try {
            long t0 = System.nanoTime();
            StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> generate(PROMPT, 8));
            assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
            assertTrue(e.getStatus().getDescription().contains("expert group g1 (*:4-7)"), e.getStatus().getDescription());
            assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(10), "it fails fast, it does not hang");
        } finally {
            RemoteExperts.g1.start();
        }
        awaitReady();
        assertArrayEquals(TinyRouterModel.reference(PROMPT, 4), generate(PROMPT, 4), "serves again once the pod is back");
    }

    @Test
    void aReplicaDyingWhileMicroBatchesAreInFlightIsRetriedAsBefore() throws Exception {
        // Three sequences at once: their steps are split in two micro-batches, each with its own layer calls in flight.
        int[][] prompts = {PROMPT, {9, 8, 7, 6, 5, 4, 3}, {100, 200, 300, 40}};
        int n = 24;
        int repeated = RemoteExperts.g1.repeatedStepLayers.get();
        List<Iterator<GenerateResponse>> streams = new ArrayList<>();
        List<List<Integer>> got = new ArrayList<>();
        for (int[] p : prompts) {
            streams.add(stub.withDeadlineAfter(60, TimeUnit.SECONDS).generate(RouterServiceTest.greedy(p, n)));
            got.add(new ArrayList<>());
        }
        for (int s = 0; s < prompts.length; s++) {
            while (got.get(s).size() < 3) got.get(s).addAll(streams.get(s).next().getTokenIdsList());
        }
        RemoteExperts.g0a.kill();
        try {
            for (int s = 0; s < prompts.length; s++) {
                List<Integer> out = got.get(s);
                streams.get(s).forEachRemaining(r -> out.addAll(r.getTokenIdsList()));
            }
        } finally {
            RemoteExperts.g0a.start();
        }
        for (int s = 0; s < prompts.length; s++) {
            assertArrayEquals(TinyRouterModel.reference(prompts[s], n), got.get(s).stream().mapToInt(Integer::intValue).toArray(),
                    "sequence " + s);
        }
        assertTrue(RemoteExperts.g1.repeatedStepLayers.get() > repeated, "g1 was called twice for a (step, layer): steps were split");
    }

    @Test
    void killingAReplicaMidStreamDoesNotBreakTheStream() throws Exception {
        Iterator<GenerateResponse> it = stub.withDeadlineAfter(60, TimeUnit.SECONDS).generate(RouterServiceTest.greedy(PROMPT, 30));
        List<Integer> got = new ArrayList<>();
        for (int i = 0; i < 5; i++) got.addAll(it.next().getTokenIdsList());
        RemoteExperts.g0a.kill();
        try {
            it.forEachRemaining(r -> got.addAll(r.getTokenIdsList()));
        } finally {
            RemoteExperts.g0a.start();
        }
        assertArrayEquals(TinyRouterModel.reference(PROMPT, 30), got.stream().mapToInt(Integer::intValue).toArray());
    }
}
