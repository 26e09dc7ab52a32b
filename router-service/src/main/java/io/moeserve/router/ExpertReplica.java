package io.moeserve.router;

import io.grpc.ChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import io.moeserve.proto.expert.v1.ExpertServiceGrpc;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.socket.nio.NioSocketChannel;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One expert pod of a group as the router sees it: its channel, whether it can take calls, and how much work it
 * has, which is what replica choice weighs (tokens this router has outstanding there, plus the queue the pod
 * reported in its last answer, which includes other routers' work).
 */
final class ExpertReplica {

    /** What the router knows of the pod. */
    enum Health {
        /** Not described yet, or loading its weights. */
        PROBING,
        READY,
        /** Shutting down: finishing its calls, refusing new ones. */
        DRAINING,
        /** A call or probe failed; avoided until its back-off ends and a probe succeeds. */
        FAILED,
        /** Serves another model, version or experts than the map says; never used until it changes. */
        MISCONFIGURED
    }

    final String address;
    final ManagedChannel channel;
    final ExpertServiceGrpc.ExpertServiceStub stub;
    /** The calls on one long-lived stream, when {@code moe.router.experts.transport=stream}; opened by the first call. */
    final ExpertCallStream stream;
    /**
     * Where the stream's per-call deadlines are scheduled: the transport's event loop, which is awake anyway when a call
     * is sent (to write it) and when it is answered (to read it, and cancel the deadline there, which takes it out of
     * the loop's queue). On the dispatcher's scheduler each deadline cost a wake-up of its thread when it fell due
     * two seconds later, cancelled or not: one per call (BENCHMARKS.md, issue 16).
     */
    final ScheduledExecutorService deadlines;
    final AtomicLong outstandingTokens = new AtomicLong();
    volatile int reportedQueuedTokens;
    volatile Health health = Health.PROBING;
    volatile long avoidUntilNanos;
    volatile String lastProblem = "";
    volatile String podName = "";

    /**
     * @param transport the event loop every expert channel of the router shares ({@code transport-threads})
     * @param credentials plaintext, or TLS with {@code moe.tls.*} (GrpcTls)
     */
    ExpertReplica(String host, int port, int maxMessageBytes, EventLoopGroup transport, ChannelCredentials credentials) {
        this.address = host + ":" + port;
        this.channel = NettyChannelBuilder.forAddress(host, port, credentials)
                .eventLoopGroup(transport)
                .channelType(NioSocketChannel.class)
                .directExecutor()
                // GrpcExpertDispatcher retries (on another replica, with its own deadlines); gRPC's own retry layer
                // would only keep a copy of every request in case it retried too.
                .disableRetry()
                .maxInboundMessageSize(maxMessageBytes)
                .keepAliveTime(30, TimeUnit.SECONDS)
                .build();
        this.stub = ExpertServiceGrpc.newStub(channel);
        this.stream = new ExpertCallStream(stub, address);
        this.deadlines = transport.next();
    }

    /** Outstanding work as replica choice compares it. */
    long load() {
        return outstandingTokens.get() + reportedQueuedTokens;
    }

    boolean usable(long nowNanos) {
        return health == Health.READY && nowNanos - avoidUntilNanos >= 0;
    }

    void recordSuccess(int queuedTokens) {
        reportedQueuedTokens = queuedTokens;
        if (health == Health.FAILED || health == Health.PROBING) health = Health.READY;
    }

    void recordFailure(String problem, long backoffNanos, boolean draining) {
        lastProblem = problem;
        avoidUntilNanos = System.nanoTime() + backoffNanos;
        if (health != Health.MISCONFIGURED) health = draining ? Health.DRAINING : Health.FAILED;
        // A draining pod waits for its open streams before it stops: end ours once its calls are answered.
        if (draining) stream.close();
    }

    void close() {
        stream.close();
        channel.shutdown();
    }

    @Override
    public String toString() {
        return address + (podName.isEmpty() ? "" : " (" + podName + ")");
    }
}
