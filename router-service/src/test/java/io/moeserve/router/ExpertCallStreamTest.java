package io.moeserve.router;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.moeserve.proto.WireTensors;
import io.moeserve.proto.expert.v1.ExpertBatchRequest;
import io.moeserve.proto.expert.v1.ExpertBatchResponse;
import io.moeserve.proto.expert.v1.ExpertServiceGrpc;
import io.moeserve.proto.expert.v1.WireDType;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The call stream against an in-process pod: every answer reaches the call it belongs to, also with many calls in
 * flight from several threads; a call past its deadline fails once and its late answer is dropped; a pod that dies
 * fails every call in flight with UNAVAILABLE (which the dispatcher retries elsewhere) and the next call opens a new
 * stream; calls to a pod that is gone fail at once; a draining pod's UNAVAILABLE reaches the caller as it would from a
 * unary call.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ExpertCallStreamTest {
    private static final long SECOND = TimeUnit.SECONDS.toNanos(1);
    private static InProcessExpertPod pod;
    private static ManagedChannel channel;
    private static ExpertServiceGrpc.ExpertServiceStub stub;
    private static ScheduledExecutorService timers;
    private static ModelConfig config;

    @BeforeAll
    static void start() {
        pod = new InProcessExpertPod(TinyRouterModel.dir(), TinyRouterModel.MODEL_ID, "*", RemoteExperts.freePort());
        config = ConfigParser.load(TinyRouterModel.dir());
        channel = NettyChannelBuilder.forAddress("127.0.0.1", pod.port).usePlaintext().directExecutor().disableRetry().build();
        stub = ExpertServiceGrpc.newStub(channel);
        timers = Executors.newSingleThreadScheduledExecutor();
    }

    @AfterAll
    static void stop() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        timers.shutdownNow();
        pod.close();
    }

    @BeforeEach
    void healthy() {
        pod.stallMillis = 0;
        pod.draining = false;
        pod.failNext = 0;
    }

    /** A call of {@code tokens} random hidden states, each routed to top-k experts at random (seeded). */
    private static ExpertBatchRequest request(int seed, int tokens) {
        Random random = new Random(seed);
        int hidden = config.hiddenSize();
        int k = config.moe().topK();
        int experts = config.moe().numFfnExperts();
        float[] x = new float[tokens * hidden];
        for (int i = 0; i < x.length; i++) x[i] = (float) random.nextGaussian();
        ExpertBatchRequest.Builder b = ExpertBatchRequest.newBuilder().setModelId(TinyRouterModel.MODEL_ID).setLayer(0).setNumTokens(tokens)
                .setHiddenSize(hidden).setDtype(WireDType.WIRE_DTYPE_F32).setOutputDtype(WireDType.WIRE_DTYPE_F32)
                .setHiddenStates(WireTensors.encode(x, 0, x.length, WireDType.WIRE_DTYPE_F32)).addPairOffsets(0);
        for (int t = 0; t < tokens; t++) {
            int first = random.nextInt(experts);
            for (int j = 0; j < k; j++) b.addExpertIds((first + j) % experts).addRoutingWeights(random.nextFloat());
            b.addPairOffsets((t + 1) * k);
        }
        return b.build();
    }

    /** Collects one call's outcome and counts how often it was told one, which must be once. */
    private static final class Outcome implements StreamObserver<ExpertBatchResponse> {
        final CompletableFuture<ExpertBatchResponse> result = new CompletableFuture<>();
        final AtomicInteger endings = new AtomicInteger();
        ExpertBatchResponse response;

        @Override
        public void onNext(ExpertBatchResponse value) {
            response = value;
        }

        @Override
        public void onError(Throwable t) {
            endings.incrementAndGet();
            result.completeExceptionally(t);
        }

        @Override
        public void onCompleted() {
            endings.incrementAndGet();
            result.complete(response);
        }

        Status status() throws InterruptedException {
            try {
                result.get(10, TimeUnit.SECONDS);
                return Status.OK;
            } catch (java.util.concurrent.ExecutionException e) {
                return Status.fromThrowable(e.getCause());
            } catch (java.util.concurrent.TimeoutException e) {
                throw new AssertionError("the call was never answered", e);
            }
        }
    }

    private static ExpertBatchResponse unary(ExpertBatchRequest r) {
        return ExpertServiceGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS).computeExperts(r);
    }

    @Test
    void everyAnswerReachesItsOwnCallWithManyInFlight() throws Exception {
        ExpertCallStream stream = new ExpertCallStream(stub, "pod");
        int threads = 4, perThread = 40;
        List<CompletableFuture<Void>> done = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int thread = t;
            done.add(CompletableFuture.runAsync(() -> {
                List<Outcome> outcomes = new ArrayList<>();
                List<ExpertBatchRequest> requests = new ArrayList<>();
                for (int i = 0; i < perThread; i++) {
                    ExpertBatchRequest r = request(thread * 1000 + i, 1 + i % 5);
                    Outcome o = new Outcome();
                    stream.send(r, o, 10 * SECOND, timers);
                    outcomes.add(o);
                    requests.add(r);
                }
                for (int i = 0; i < perThread; i++) {
                    ExpertBatchResponse got = outcomes.get(i).result.join();
                    assertEquals(requests.get(i).getNumTokens(), got.getNumTokens());
                    assertArrayEquals(unary(requests.get(i)).getOutputs().toByteArray(), got.getOutputs().toByteArray(), "call " + i);
                    assertEquals(1, outcomes.get(i).endings.get());
                }
            }, Executors.newVirtualThreadPerTaskExecutor()));
        }
        for (CompletableFuture<Void> f : done) f.get(30, TimeUnit.SECONDS);
        assertEquals(0, stream.inFlight());
        stream.close();
    }

    @Test
    void aCallPastItsDeadlineFailsOnceAndItsLateAnswerIsDropped() throws Exception {
        ExpertCallStream stream = new ExpertCallStream(stub, "pod");
        pod.stallMillis = 300;
        Outcome late = new Outcome();
        stream.send(request(1, 2), late, TimeUnit.MILLISECONDS.toNanos(50), timers);
        assertEquals(Status.Code.DEADLINE_EXCEEDED, late.status().getCode());
        pod.stallMillis = 0;
        Outcome next = new Outcome();
        ExpertBatchRequest r = request(2, 3);
        stream.send(r, next, 10 * SECOND, timers);
        assertEquals(Status.Code.OK, next.status().getCode());
        assertArrayEquals(unary(r).getOutputs().toByteArray(), next.result.get().getOutputs().toByteArray());
        // The stalled call's answer came back meanwhile, on the same stream: nobody was told twice.
        assertEquals(1, late.endings.get());
        assertEquals(1, next.endings.get());
        assertEquals(0, stream.inFlight());
        stream.close();
    }

    @Test
    void aDyingPodFailsEveryCallInFlightAndTheNextStreamWorks() throws Exception {
        ExpertCallStream stream = new ExpertCallStream(stub, "pod");
        pod.stallMillis = 1500;
        List<Outcome> inFlight = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            Outcome o = new Outcome();
            stream.send(request(10 + i, 1), o, 30 * SECOND, timers);
            inFlight.add(o);
        }
        Thread.sleep(100); // the first is stalled on the pod, the others queued behind it on the stream
        long killed = System.nanoTime();
        pod.kill();
        for (Outcome o : inFlight) {
            assertEquals(Status.Code.UNAVAILABLE, o.status().getCode());
            assertEquals(1, o.endings.get());
        }
        assertTrue(System.nanoTime() - killed < 10 * SECOND, "the calls failed only at their deadline, not when the stream broke");
        pod.stallMillis = 0;
        pod.start();
        Outcome after = new Outcome();
        ExpertBatchRequest r = request(20, 2);
        for (int attempt = 0; attempt < 50; attempt++) {
            // The channel reconnects to the restarted pod with a back-off; a call before that fails UNAVAILABLE.
            after = new Outcome();
            stream.send(r, after, 10 * SECOND, timers);
            if (after.status().isOk()) break;
            Thread.sleep(100);
        }
        assertEquals(Status.Code.OK, after.status().getCode());
        assertArrayEquals(unary(r).getOutputs().toByteArray(), after.result.get().getOutputs().toByteArray());
        stream.close();
    }

    @Test
    void eachCallTellsThePodItsDeadline() throws Exception {
        // The pod skips a call still queued past it, as it skips a unary call whose deadline passed.
        ExpertCallStream stream = new ExpertCallStream(stub, "pod");
        Outcome o = new Outcome();
        stream.send(request(50, 1), o, 7 * SECOND, timers);
        assertEquals(Status.Code.OK, o.status().getCode());
        assertEquals(7_000_000, pod.lastStreamTimeoutMicros);
        stream.close();
    }

    @Test
    void callsToAPodThatIsGoneFailAtOnceNotAtTheirDeadline() throws Exception {
        // Once the channel is in TRANSIENT_FAILURE, gRPC fails a new stream inside its start, on the sending thread:
        // the calls sent on it must hear so then, as a unary call would, not 30 s later from their timers.
        ManagedChannel nowhere = NettyChannelBuilder.forAddress("127.0.0.1", RemoteExperts.freePort()).usePlaintext().directExecutor()
                .disableRetry().build();
        try {
            ExpertCallStream stream = new ExpertCallStream(ExpertServiceGrpc.newStub(nowhere), "gone");
            for (int i = 0; i < 5; i++) {
                Outcome o = new Outcome();
                long t0 = System.nanoTime();
                stream.send(request(40 + i, 1), o, 30 * SECOND, timers);
                assertEquals(Status.Code.UNAVAILABLE, o.status().getCode(), "call " + i);
                assertTrue(System.nanoTime() - t0 < 5 * SECOND, "call " + i + " failed only at its deadline");
                assertEquals(1, o.endings.get());
                assertEquals(0, stream.inFlight());
            }
        } finally {
            nowhere.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    @Test
    void aDrainingPodsRefusalReachesTheCaller() throws Exception {
        ExpertCallStream stream = new ExpertCallStream(stub, "pod");
        pod.draining = true;
        Outcome o = new Outcome();
        stream.send(request(30, 1), o, 10 * SECOND, timers);
        Status s = o.status();
        assertEquals(Status.Code.UNAVAILABLE, s.getCode());
        assertTrue(s.getDescription().contains("draining"), s.getDescription());
        stream.close();
    }
}
