package io.moeserve.expert;

import io.grpc.Context;
import io.moeserve.proto.expert.v1.ExpertBatchRequest;
import io.moeserve.proto.expert.v1.ExpertBatchResponse;
import io.moeserve.proto.expert.v1.WireDType;
import io.smallrye.mutiny.subscription.UniEmitter;

/**
 * One validated ComputeExperts call waiting for, or in, a batch: its tokens' hidden states and (expert, weight)
 * pairs unpacked into the k-slots-per-token layout the runtime's executor takes, and where its answer goes.
 */
final class ExpertCall {
    final ExpertBatchRequest request;
    final int layer;
    final int tokens;
    final float[] x;
    final int[] experts;
    final float[] weights;
    final int pairs;
    final WireDType outputDType;
    final long arrivedNanos;
    UniEmitter<? super ExpertBatchResponse> emitter;
    /** The call's gRPC context: cancelled when the router gave up on it (deadline passed, retried elsewhere). */
    Context context;
    /**
     * A call on a ComputeExpertsStream: the router's deadline, in nanoseconds after {@link #arrivedNanos} (0: none).
     * The stream's context has no deadline per call, so this stands for it.
     */
    long timeoutNanos;
    /** Set by whoever computes its batch (a gRPC thread or the compute thread): when it started, and how many calls it held. */
    long startedNanos;
    int batchedCalls;
    /** The call's answer, tokens × hidden floats; or the failure that prevented it. */
    float[] out;
    RuntimeException failure;

    ExpertCall(ExpertBatchRequest request, int layer, int tokens, float[] x, int[] experts, float[] weights, int pairs,
               WireDType outputDType, long arrivedNanos) {
        this.request = request;
        this.layer = layer;
        this.tokens = tokens;
        this.x = x;
        this.experts = experts;
        this.weights = weights;
        this.pairs = pairs;
        this.outputDType = outputDType;
        this.arrivedNanos = arrivedNanos;
    }
}
