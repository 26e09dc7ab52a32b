package io.moeserve.expert;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Context;
import io.grpc.Status;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moeserve.proto.WireTensors;
import io.moeserve.proto.expert.v1.ExpertBatchRequest;
import io.moeserve.proto.expert.v1.ExpertBatchResponse;
import io.moeserve.proto.expert.v1.WireDType;
import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.expert.CheckpointExpertStore;
import io.moeserve.runtime.expert.ExpertLoader;
import io.moeserve.runtime.expert.ExpertSet;
import io.moeserve.runtime.expert.LocalExpertExecutor;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import io.moeserve.runtime.synthetic.SyntheticCheckpointGenerator;
import io.smallrye.mutiny.Uni;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * The pod's computing without gRPC around it: calls the caller gave up on (cancelled, or a stream call past the deadline
 * it came with) are skipped, the others answered;
 * decode-sized calls on the thread that brought them, larger ones on the compute thread.
 */
class ExpertComputerTest {

    /** A tiny Mixtral checkpoint's experts, all hosted, behind a computer that inlines calls of up to {@code inlineMaxTokens}. */
    private record Pod(ModelConfig config, Checkpoint checkpoint, SimpleMeterRegistry registry, ExpertMetrics metrics,
                       ExpertComputer computer, ExpertCallParser parser) implements AutoCloseable {
        static Pod start(int inlineMaxTokens) throws Exception {
            Path dir = Files.createTempDirectory("expert-computer").resolve("m");
            SyntheticCheckpointGenerator.generate(dir, SyntheticCheckpointGenerator.Spec.tiny(Architecture.MIXTRAL));
            ModelConfig config = ConfigParser.load(dir);
            Checkpoint ck = Checkpoint.open(dir);
            ExpertSet hosts = ExpertSet.parse("*");
            CheckpointExpertStore store = ExpertLoader.loadHosted(config, ck, hosts);
            SimpleMeterRegistry registry = new SimpleMeterRegistry();
            ExpertMetrics metrics = new ExpertMetrics(registry, store, new LoadWindow());
            LocalExpertExecutor executor = new LocalExpertExecutor(store, new CpuMatmulKernels(new Parallel(1)), 16, 2, metrics);
            ExpertComputer computer = new ExpertComputer(executor, config.hiddenSize(), 2, 16, inlineMaxTokens, "m", 0);
            return new Pod(config, ck, registry, metrics, computer, new ExpertCallParser("m", 0, config, hosts, hosts.spec()));
        }

        @Override
        public void close() {
            computer.close();
            checkpoint.close();
        }
    }

    @Test
    void callsTheCallerGaveUpOnAreNotComputed() throws Exception {
        try (Pod pod = Pod.start(16)) {
            ExpertComputer computer = pod.computer();
            ExpertCallParser parser = pod.parser();
            SimpleMeterRegistry registry = pod.registry();
            ExpertMetrics metrics = pod.metrics();
            ExpertBatchRequest r = request(pod.config().hiddenSize(), 1);

            Context.CancellableContext abandoned = Context.current().withCancellation();
            abandoned.cancel(null);
            ExpertCall gone = parser.parse(r, System.nanoTime());
            gone.context = abandoned;
            ExpertCall wanted = parser.parse(r, System.nanoTime());
            wanted.context = Context.current();
            // Both are queued before the thread starts, so they are taken in one batch.
            Uni<ExpertBatchResponse> goneAnswer = Uni.createFrom().<ExpertBatchResponse>emitter(e -> {
                gone.emitter = e;
                computer.submit(gone);
            }).memoize().indefinitely();
            Uni<ExpertBatchResponse> wantedAnswer = Uni.createFrom().<ExpertBatchResponse>emitter(e -> {
                wanted.emitter = e;
                computer.submit(wanted);
            }).memoize().indefinitely();
            goneAnswer.subscribe().with(x -> { }, x -> { });
            wantedAnswer.subscribe().with(x -> { }, x -> { });
            computer.start(metrics);
            assertEquals(1, wantedAnswer.await().atMost(Duration.ofSeconds(30)).getNumTokens());
            Throwable failure = goneAnswer.onItem().transform(x -> (Throwable) null).onFailure().recoverWithItem(t -> t)
                    .await().atMost(Duration.ofSeconds(30));
            assertEquals(Status.Code.CANCELLED, Status.fromThrowable(failure).getCode());
            assertEquals(1.0, registry.get("moe.expert.pod.abandoned.calls").counter().count());
            assertEquals(1.0, registry.get("moe.expert.pod.calls").counter().count(), "only the wanted call was computed");
            assertTrue(computer.awaitIdle(Duration.ofSeconds(5).toNanos()));
        }
    }

    @Test
    void aStreamCallStillQueuedPastTheDeadlineItCameWithIsNotComputed() throws Exception {
        try (Pod pod = Pod.start(16)) {
            ExpertComputer computer = pod.computer();
            ExpertBatchRequest r = request(pod.config().hiddenSize(), 1);
            // A stream's context has no per-call deadline: the one the router sent with the call stands for it.
            ExpertCall late = pod.parser().parse(r, System.nanoTime() - Duration.ofSeconds(1).toNanos());
            late.context = Context.current();
            late.timeoutNanos = Duration.ofMillis(500).toNanos();
            ExpertCall inTime = pod.parser().parse(r, System.nanoTime());
            inTime.context = Context.current();
            inTime.timeoutNanos = Duration.ofSeconds(60).toNanos();
            Uni<ExpertBatchResponse> lateAnswer = Uni.createFrom().<ExpertBatchResponse>emitter(e -> {
                late.emitter = e;
                computer.submit(late);
            }).memoize().indefinitely();
            Uni<ExpertBatchResponse> inTimeAnswer = Uni.createFrom().<ExpertBatchResponse>emitter(e -> {
                inTime.emitter = e;
                computer.submit(inTime);
            }).memoize().indefinitely();
            lateAnswer.subscribe().with(x -> { }, x -> { });
            inTimeAnswer.subscribe().with(x -> { }, x -> { });
            computer.start(pod.metrics());
            assertEquals(1, inTimeAnswer.await().atMost(Duration.ofSeconds(30)).getNumTokens());
            Throwable failure = lateAnswer.onItem().transform(x -> (Throwable) null).onFailure().recoverWithItem(t -> t)
                    .await().atMost(Duration.ofSeconds(30));
            assertEquals(Status.Code.CANCELLED, Status.fromThrowable(failure).getCode());
            assertEquals(1.0, pod.registry().get("moe.expert.pod.abandoned.calls").counter().count());
            assertEquals(1.0, pod.registry().get("moe.expert.pod.calls").counter().count(), "only the call in time was computed");
        }
    }

    @Test
    void smallCallsAreComputedOnTheThreadThatBroughtThemLargeOnesOnTheComputeThread() throws Exception {
        try (Pod pod = Pod.start(4)) {
            ExpertComputer computer = pod.computer();
            int h = pod.config().hiddenSize();
            computer.start(pod.metrics());
            String caller = Thread.currentThread().getName();
            assertEquals(caller, answeringThread(computer, pod.parser().parse(request(h, 4), System.nanoTime())),
                    "a call of inline-max-tokens is answered before submit returns, by the submitting thread");
            assertEquals("expert-compute", answeringThread(computer, pod.parser().parse(request(h, 5), System.nanoTime())),
                    "a larger call is left to the compute thread");
            assertEquals(2.0, pod.registry().get("moe.expert.pod.calls").counter().count());
            assertTrue(computer.awaitIdle(Duration.ofSeconds(5).toNanos()));
        }
    }

    /** Submits the call and returns the name of the thread that answered it. */
    private static String answeringThread(ExpertComputer computer, ExpertCall call) {
        call.context = Context.current();
        String[] thread = new String[1];
        Uni.createFrom().<ExpertBatchResponse>emitter(e -> {
            call.emitter = e;
            computer.submit(call);
        }).onItem().invoke(x -> thread[0] = Thread.currentThread().getName()).await().atMost(Duration.ofSeconds(30));
        return thread[0];
    }

    /** A call of {@code tokens} zero hidden states, each routed to expert 3 of layer 0. */
    private static ExpertBatchRequest request(int hidden, int tokens) {
        ExpertBatchRequest.Builder b = ExpertBatchRequest.newBuilder().setModelId("m").setLayer(0).setNumTokens(tokens)
                .setHiddenSize(hidden).setDtype(WireDType.WIRE_DTYPE_F32)
                .setHiddenStates(WireTensors.encode(new float[tokens * hidden], 0, tokens * hidden, WireDType.WIRE_DTYPE_F32))
                .addPairOffsets(0);
        for (int t = 0; t < tokens; t++) b.addPairOffsets(t + 1).addExpertIds(3).addRoutingWeights(1f);
        return b.build();
    }
}
