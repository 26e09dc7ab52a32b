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
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import io.moeserve.runtime.model.Architecture;
import io.moeserve.runtime.model.CheckpointExpertStore;
import io.moeserve.runtime.model.ConfigParser;
import io.moeserve.runtime.model.ExpertLoader;
import io.moeserve.runtime.model.ExpertSet;
import io.moeserve.runtime.model.LocalExpertExecutor;
import io.moeserve.runtime.model.ModelConfig;
import io.moeserve.runtime.synthetic.SyntheticCheckpointGenerator;
import io.smallrye.mutiny.Uni;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** The compute thread without gRPC around it: calls the caller gave up on are skipped, the others answered. */
class ExpertComputerTest {

    @Test
    void callsTheCallerGaveUpOnAreNotComputed() throws Exception {
        Path dir = Files.createTempDirectory("expert-computer").resolve("m");
        SyntheticCheckpointGenerator.generate(dir, SyntheticCheckpointGenerator.Spec.tiny(Architecture.MIXTRAL));
        ModelConfig config = ConfigParser.load(dir);
        try (Checkpoint ck = Checkpoint.open(dir)) {
            ExpertSet hosts = ExpertSet.parse("*");
            CheckpointExpertStore store = ExpertLoader.loadHosted(config, ck, hosts);
            SimpleMeterRegistry registry = new SimpleMeterRegistry();
            ExpertComputer[] holder = new ExpertComputer[1];
            ExpertMetrics metrics = new ExpertMetrics(registry, store, new LoadWindow(), () -> 0, () -> 0);
            LocalExpertExecutor executor = new LocalExpertExecutor(store, new CpuMatmulKernels(new Parallel(1)), 16, 2, metrics);
            holder[0] = new ExpertComputer(executor, config.hiddenSize(), 2, 16, "m", 0);
            ExpertCallParser parser = new ExpertCallParser("m", 0, config, hosts, hosts.spec());
            int h = config.hiddenSize();
            ExpertBatchRequest r = ExpertBatchRequest.newBuilder().setModelId("m").setLayer(0).setNumTokens(1).setHiddenSize(h)
                    .setDtype(WireDType.WIRE_DTYPE_F32).setHiddenStates(WireTensors.encode(new float[h], 0, h, WireDType.WIRE_DTYPE_F32))
                    .addPairOffsets(0).addPairOffsets(1).addExpertIds(3).addRoutingWeights(1f).build();

            Context.CancellableContext abandoned = Context.current().withCancellation();
            abandoned.cancel(null);
            ExpertCall gone = parser.parse(r, System.nanoTime());
            gone.context = abandoned;
            ExpertCall wanted = parser.parse(r, System.nanoTime());
            wanted.context = Context.current();
            // Both are queued before the thread starts, so they are taken in one batch.
            Uni<ExpertBatchResponse> goneAnswer = Uni.createFrom().<ExpertBatchResponse>emitter(e -> {
                gone.emitter = e;
                holder[0].submit(gone);
            }).memoize().indefinitely();
            Uni<ExpertBatchResponse> wantedAnswer = Uni.createFrom().<ExpertBatchResponse>emitter(e -> {
                wanted.emitter = e;
                holder[0].submit(wanted);
            }).memoize().indefinitely();
            goneAnswer.subscribe().with(x -> { }, x -> { });
            wantedAnswer.subscribe().with(x -> { }, x -> { });
            holder[0].start(metrics);
            try {
                assertEquals(1, wantedAnswer.await().atMost(Duration.ofSeconds(30)).getNumTokens());
                Throwable failure = goneAnswer.onItem().transform(x -> (Throwable) null).onFailure().recoverWithItem(t -> t)
                        .await().atMost(Duration.ofSeconds(30));
                assertEquals(Status.Code.CANCELLED, Status.fromThrowable(failure).getCode());
                assertEquals(1.0, registry.get("moe.expert.pod.abandoned.calls").counter().count());
                assertEquals(1.0, registry.get("moe.expert.pod.calls").counter().count(), "only the wanted call was computed");
                assertTrue(holder[0].awaitIdle(Duration.ofSeconds(5).toNanos()));
            } finally {
                holder[0].close();
            }
        }
    }
}
