package io.moeserve.router;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The router's expert calls on one long-lived stream per pod ({@code moe.router.experts.transport=stream}): the
 * output is the in-process output, every call travels on the streams, and a replica that fails calls, stalls past
 * the deadline, drains or dies is retried around as with unary calls (RemoteExpertsTest has those cases unary), and the
 * stream to a pod a probe finds draining is ended, so that the pod's shutdown need not wait for it.
 */
@QuarkusTest
@QuarkusTestResource(value = RemoteExperts.class, restrictToAnnotatedClass = true, initArgs = @ResourceArg(name = "transport", value = "stream"))
class RemoteExpertsOverStreamTest {
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
        for (InProcessExpertPod p : pods()) {
            p.failNext = 0;
            p.stallMillis = 0;
            p.draining = false;
        }
        // A stream's calls are handled one after another: a call an earlier test stalled would hold up this test's
        // first call on that pod past its deadline.
        for (int i = 0; i < 200 && Arrays.stream(pods()).anyMatch(p -> p.active.get() > 0); i++) Thread.sleep(50);
        for (int i = 0; i < 300; i++) {
            String body = given().get("/q/health/ready").asString();
            if (body.contains("2 of 2 pods ready") && body.contains("1 of 1 pods ready")) return;
            Thread.sleep(50);
        }
        throw new AssertionError("router never ready: " + given().get("/q/health/ready").asString());
    }

    private static InProcessExpertPod[] pods() {
        return new InProcessExpertPod[] {RemoteExperts.g0a, RemoteExperts.g0b, RemoteExperts.g1};
    }

    private static int[] generate(int[] prompt, int n) {
        List<GenerateResponse> out = new ArrayList<>();
        stub.withDeadlineAfter(60, TimeUnit.SECONDS).generate(RouterServiceTest.greedy(prompt, n)).forEachRemaining(out::add);
        return RouterServiceTest.tokens(out);
    }

    @Test
    void outputIsTheInProcessOutputAndEveryCallIsOnAStream() {
        int calls = 0, onStreams = 0;
        for (InProcessExpertPod p : pods()) {
            calls -= p.calls.get();
            onStreams -= p.streamCalls.get();
        }
        assertArrayEquals(TinyRouterModel.reference(PROMPT, 12), generate(PROMPT, 12));
        for (InProcessExpertPod p : pods()) {
            calls += p.calls.get();
            onStreams += p.streamCalls.get();
        }
        assertTrue(calls > 0);
        assertEquals(calls, onStreams, "every expert call came on a stream");
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
    void theStreamToAReplicaAProbeSeesDrainingIsEnded() throws InterruptedException {
        for (int i = 0; i < 20 && RemoteExperts.g0a.openStreams.get() == 0; i++) generate(PROMPT, 4);
        assertTrue(RemoteExperts.g0a.openStreams.get() > 0, "some calls went to g0a on a stream");
        RemoteExperts.g0a.draining = true;
        // The router is idle and g0b is ready, so no call goes to g0a to hear that it drains: only the probe can tell
        // the router to end the stream, which a real pod's shutdown waits for.
        for (int i = 0; i < 100 && RemoteExperts.g0a.openStreams.get() > 0; i++) Thread.sleep(50);
        assertEquals(0, RemoteExperts.g0a.openStreams.get(), "the router ended its stream to the draining pod");
    }

    @Test
    void whenTheOnlyPodOfAGroupIsGoneTheRequestEndsWithAClearErrorAtOnce() throws Exception {
        RemoteExperts.g1.kill();
        try {
            long t0 = System.nanoTime();
            StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> generate(PROMPT, 8));
            assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
            String why = e.getStatus().getDescription();
            assertTrue(why.contains("expert group g1 (*:4-7)"), why);
            // Every attempt found the pod gone when its stream opened and heard so then: none waited for its deadline.
            assertFalse(why.contains("DEADLINE_EXCEEDED"), why);
            assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(10), "it fails fast, it does not hang");
        } finally {
            RemoteExperts.g1.start();
        }
        healthyPods();
        assertArrayEquals(TinyRouterModel.reference(PROMPT, 4), generate(PROMPT, 4), "serves again once the pod is back");
    }

    @Test
    void killingAReplicaMidStreamFailsItsCallsOverToTheOther() throws Exception {
        Iterator<GenerateResponse> it = stub.withDeadlineAfter(60, TimeUnit.SECONDS).generate(RouterServiceTest.greedy(PROMPT, 30));
        List<Integer> got = new ArrayList<>();
        for (int i = 0; i < 5; i++) got.addAll(it.next().getTokenIdsList());
        long t0 = System.nanoTime();
        RemoteExperts.g0a.kill();
        try {
            it.forEachRemaining(r -> got.addAll(r.getTokenIdsList()));
        } finally {
            RemoteExperts.g0a.start();
        }
        assertArrayEquals(TinyRouterModel.reference(PROMPT, 30), got.stream().mapToInt(Integer::intValue).toArray());
        // The broken stream failed its calls at once: no call waited out its 500 ms deadline per layer and token.
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(10), "the calls on the broken stream were failed over promptly");
    }
}
