package io.moeserve.expert;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moeserve.proto.expert.v1.DescribePodRequest;
import io.moeserve.proto.expert.v1.ExpertBatchRequest;
import io.moeserve.proto.expert.v1.ExpertBatchResponse;
import io.moeserve.proto.expert.v1.ExpertService;
import io.moeserve.proto.expert.v1.ExpertStreamRequest;
import io.moeserve.proto.expert.v1.ExpertStreamResponse;
import io.moeserve.proto.expert.v1.HostedLayer;
import io.moeserve.proto.expert.v1.PodDescription;
import io.moeserve.proto.expert.v1.PodLoad;
import io.moeserve.proto.expert.v1.ServingState;
import io.moeserve.runtime.expert.ExpertWeights;
import io.quarkus.grpc.GrpcService;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.Uni;
import jakarta.inject.Inject;
import java.util.LinkedHashSet;
import java.util.Set;

/** The ExpertService gRPC endpoint: validates calls and hands them to the compute thread; describes the pod. */
@GrpcService
public class ExpertGrpcService implements ExpertService {
    /** Calls of one stream computed or queued at once: far more than a router has in flight (one per layer and step). */
    private static final int MAX_CALLS_PER_STREAM = 1024;

    @Inject
    ExpertPod pod;

    @Override
    public Uni<ExpertBatchResponse> computeExperts(ExpertBatchRequest request) {
        return compute(request, 0);
    }

    /** @param timeoutNanos a stream call's deadline after its arrival (0: none; a unary call's is in its context) */
    private Uni<ExpertBatchResponse> compute(ExpertBatchRequest request, long timeoutNanos) {
        ExpertPod.Loaded loaded = pod.loaded();
        ExpertPod.State state = pod.state();
        if (state != ExpertPod.State.SERVING || loaded == null) {
            String why = state == ExpertPod.State.DRAINING ? "the expert pod is draining" : "the expert pod is still loading its weights";
            return Uni.createFrom().failure(Status.UNAVAILABLE.withDescription(why).asRuntimeException());
        }
        ExpertCall call;
        try {
            call = loaded.parser().parse(request, System.nanoTime());
        } catch (StatusRuntimeException e) {
            return Uni.createFrom().failure(e);
        } catch (IllegalArgumentException e) {
            return Uni.createFrom().failure(Status.INVALID_ARGUMENT.withDescription(e.getMessage()).asRuntimeException());
        }
        call.context = io.grpc.Context.current();
        call.timeoutNanos = timeoutNanos;
        return Uni.createFrom().emitter(emitter -> {
            call.emitter = emitter;
            loaded.computer().submit(call);
        });
    }

    /**
     * The same calls on one long-lived stream: each message goes through {@link #computeExperts}, so it is validated,
     * queued and computed (inline on the transport thread when the pod is idle) exactly as a unary call, and its
     * answer or failure goes back as one message with the call's id. Answers leave in the order they are ready. A
     * call still queued past the deadline the router sent with it is skipped, as a unary call past its deadline is.
     */
    @Override
    public Multi<ExpertStreamResponse> computeExpertsStream(Multi<ExpertStreamRequest> requests) {
        return requests.onItem().transformToUni(m -> compute(m.getRequest(), m.getTimeoutMicros() * 1000)
                        .map(r -> ExpertStreamResponse.newBuilder().setCallId(m.getCallId()).setResponse(r).build())
                        .onFailure().recoverWithItem(t -> {
                            Status s = Status.fromThrowable(t);
                            return ExpertStreamResponse.newBuilder().setCallId(m.getCallId()).setStatusCode(s.getCode().value())
                                    .setStatusDescription(s.getDescription() == null ? "" : s.getDescription()).build();
                        }))
                .merge(MAX_CALLS_PER_STREAM);
    }

    @Override
    public Uni<PodDescription> describePod(DescribePodRequest request) {
        PodDescription.Builder d = PodDescription.newBuilder()
                .setModelId(pod.model().resolvedId())
                .setRoutingTableVersion(pod.settings().routingTableVersion())
                .setPodName(pod.podName())
                .setMaxTokensPerCall(pod.settings().maxBatchTokens())
                .setState(switch (pod.state()) {
                    case LOADING -> ServingState.SERVING_STATE_LOADING;
                    case SERVING -> ServingState.SERVING_STATE_SERVING;
                    case DRAINING -> ServingState.SERVING_STATE_DRAINING;
                });
        ExpertPod.Loaded l = pod.loaded();
        if (l != null) {
            d.setArchitecture(l.config().architecture().hfClassName())
                    .setHiddenSize(l.config().hiddenSize())
                    .setNumLayers(l.config().numLayers())
                    .setNumExperts(l.config().moe().numFfnExperts())
                    .setBackend(l.backend());
            for (int layer = 0; layer < l.config().numLayers(); layer++) {
                int[] ids = l.store().hostedExperts(layer);
                if (ids.length == 0) continue;
                HostedLayer.Builder hl = HostedLayer.newBuilder().setLayer(layer);
                long bytes = 0;
                // Mixed-precision checkpoints hold a layer's experts at several widths: each format once.
                Set<String> formats = new LinkedHashSet<>();
                for (int e : ids) {
                    hl.addExperts(e);
                    ExpertWeights w = l.store().expert(layer, e);
                    bytes += w.byteSize();
                    formats.add(w.matrices().getFirst().formatName());
                }
                d.addLayers(hl.setWeightDtype(String.join(", ", formats)).setWeightBytes(bytes));
            }
            double[] rates = pod.window().rates(System.nanoTime());
            d.setLoad(PodLoad.newBuilder()
                    .setQueuedTokens(l.computer().queuedTokens())
                    .setInFlightCalls(l.computer().inFlightCalls())
                    .setTokensPerSecond(rates[0])
                    .setBusyFraction(rates[1]));
        }
        return Uni.createFrom().item(d.build());
    }
}
