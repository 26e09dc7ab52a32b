package io.moeserve.router;

import io.grpc.Context;
import io.grpc.Deadline;
import io.grpc.StatusRuntimeException;
import io.moeserve.proto.router.v1.DescribeModelRequest;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.proto.router.v1.ModelDescription;
import io.moeserve.proto.router.v1.RouterService;
import io.moeserve.runtime.model.MoeModel;
import io.quarkus.grpc.GrpcService;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.subscription.BackPressureStrategy;
import jakarta.inject.Inject;
import java.io.IOException;
import java.nio.file.Files;

/** The RouterService gRPC endpoint: Generate streams a sequence's tokens from the engine; DescribeModel. */
@GrpcService
public class RouterGrpcService implements RouterService {

    @Inject
    ServedModel served;

    @Override
    public Multi<GenerateResponse> generate(GenerateRequest request) {
        Deadline deadline = Context.current().getDeadline();
        return Multi.createFrom().emitter(emitter -> {
            RouterSequence s;
            try {
                s = served.requests().open(request, deadline);
            } catch (StatusRuntimeException e) {
                emitter.fail(e);
                return;
            }
            s.emitter = emitter;
            emitter.onTermination(() -> served.engine().cancel(s));
            try {
                served.engine().submit(s);
            } catch (StatusRuntimeException e) {
                emitter.fail(e);
            }
        }, BackPressureStrategy.BUFFER);
    }

    @Override
    public Uni<ModelDescription> describeModel(DescribeModelRequest request) {
        MoeModel m = served.model();
        long created = 0;
        try {
            created = Files.getLastModifiedTime(served.modelPath().resolve("config.json")).toMillis() / 1000;
        } catch (IOException e) {
            // leave 0: the time is informational
        }
        ModelDescription.Builder d = ModelDescription.newBuilder()
                .setModelId(served.modelId())
                .setArchitecture(m.config().architecture().hfClassName())
                .setVocabSize(m.config().vocabSize())
                .setMaxContext(m.maxContext())
                .setNumLayers(m.config().numLayers())
                .setNumExperts(m.config().moe().numFfnExperts())
                .setTopK(m.config().moe().topK())
                .setKvCacheTokens((long) served.cache().totalBlocks() * served.cache().blockSize())
                .setKvCacheFreeTokens(served.engine().freeKvTokens())
                .setCreatedUnixSeconds(created);
        for (int id : m.config().eosTokenIds()) d.addEosTokenIds(id);
        return Uni.createFrom().item(d.build());
    }
}
