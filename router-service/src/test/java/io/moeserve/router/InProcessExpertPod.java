package io.moeserve.router;

import io.grpc.Server;
import io.grpc.Status;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.stub.StreamObserver;
import io.moeserve.proto.WireTensors;
import io.moeserve.proto.expert.v1.DescribePodRequest;
import io.moeserve.proto.expert.v1.ExpertBatchRequest;
import io.moeserve.proto.expert.v1.ExpertBatchResponse;
import io.moeserve.proto.expert.v1.ExpertServiceGrpc;
import io.moeserve.proto.expert.v1.ExpertStreamRequest;
import io.moeserve.proto.expert.v1.ExpertStreamResponse;
import io.moeserve.proto.expert.v1.HostedLayer;
import io.moeserve.proto.expert.v1.PodDescription;
import io.moeserve.proto.expert.v1.ServingState;
import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.expert.CheckpointExpertStore;
import io.moeserve.runtime.expert.ExpertLoader;
import io.moeserve.runtime.expert.ExpertSet;
import io.moeserve.runtime.expert.LocalExpertExecutor;
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A small expert pod inside the test JVM, for the router's fault-handling tests: it computes the real experts with
 * the runtime (so outputs can be compared exactly), and can be told to fail, stall, drain, claim another model, or
 * stop and start again on the same port. The real expert-service is tested against the router in system-tests.
 */
final class InProcessExpertPod extends ExpertServiceGrpc.ExpertServiceImplBase implements AutoCloseable {
    final int port;
    private final String modelId;
    private final ExpertSet hosts;
    private final ModelConfig config;
    private final Checkpoint checkpoint;
    private final CheckpointExpertStore store;
    private final LocalExpertExecutor executor;
    private Server server;
    final AtomicInteger calls = new AtomicInteger();
    /** Of {@link #calls}, those that came on a ComputeExpertsStream. */
    final AtomicInteger streamCalls = new AtomicInteger();
    /** Calls for a (step, layer) this pod had already been called for: one per extra micro-batch, or a retry. */
    final AtomicInteger repeatedStepLayers = new AtomicInteger();
    /** Calls being handled now (a stalled one included). */
    final AtomicInteger active = new AtomicInteger();
    /** The deadline the last call on a stream came with, microseconds. */
    volatile long lastStreamTimeoutMicros;
    /** ComputeExpertsStreams open now: opened by a router, not yet ended by it. */
    final AtomicInteger openStreams = new AtomicInteger();
    private final java.util.Set<Long> stepLayers = java.util.concurrent.ConcurrentHashMap.newKeySet();
    volatile int failNext;
    volatile long stallMillis;
    volatile boolean draining;
    volatile String describedModel;

    InProcessExpertPod(Path dir, String modelId, String hosts, int port) {
        this.port = port;
        this.modelId = modelId;
        this.describedModel = modelId;
        this.config = ConfigParser.load(dir);
        this.hosts = ExpertSet.parse(hosts).validate(config);
        this.checkpoint = Checkpoint.open(dir);
        this.store = ExpertLoader.loadHosted(config, checkpoint, this.hosts);
        this.executor = new LocalExpertExecutor(store, new CpuMatmulKernels(new Parallel(1)), 256, config.moe().topK());
        start();
    }

    synchronized void start() {
        try {
            server = NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", port)).addService(this)
                    .maxInboundMessageSize(64 << 20).build().start();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Dies: every open call fails, new connections are refused. */
    synchronized void kill() throws InterruptedException {
        server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    @Override
    public void computeExperts(ExpertBatchRequest r, StreamObserver<ExpertBatchResponse> out) {
        active.incrementAndGet();
        try {
            handle(r, out);
        } finally {
            active.decrementAndGet();
        }
    }

    private void handle(ExpertBatchRequest r, StreamObserver<ExpertBatchResponse> out) {
        calls.incrementAndGet();
        if (!stepLayers.add(r.getStep() * 10_000 + r.getLayer())) repeatedStepLayers.incrementAndGet();
        if (draining) {
            out.onError(Status.UNAVAILABLE.withDescription("the expert pod is draining").asRuntimeException());
            return;
        }
        if (failNext > 0) {
            failNext--;
            out.onError(Status.UNAVAILABLE.withDescription("injected failure").asRuntimeException());
            return;
        }
        if (stallMillis > 0) {
            try {
                Thread.sleep(stallMillis);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        int n = r.getNumTokens();
        int h = config.hiddenSize();
        int k = config.moe().topK();
        float[] x = new float[n * h];
        WireTensors.decode(r.getHiddenStates(), r.getDtype(), x, 0, n * h);
        int[] experts = new int[n * k];
        float[] weights = new float[n * k];
        Arrays.fill(experts, -1);
        for (int t = 0; t < n; t++) {
            for (int i = r.getPairOffsets(t), j = 0; i < r.getPairOffsets(t + 1); i++, j++) {
                if (!hosts.hosts(r.getLayer(), r.getExpertIds(i))) {
                    out.onError(Status.FAILED_PRECONDITION.withDescription("not hosted").asRuntimeException());
                    return;
                }
                experts[t * k + j] = r.getExpertIds(i);
                weights[t * k + j] = r.getRoutingWeights(i);
            }
        }
        float[] y = new float[n * h];
        synchronized (executor) {
            executor.computeExperts(0, r.getLayer(), n, k, x, experts, weights, y);
        }
        out.onNext(ExpertBatchResponse.newBuilder().setModelId(modelId).setRoutingTableVersion(r.getRoutingTableVersion())
                .setLayer(r.getLayer()).setNumTokens(n).setHiddenSize(h).setDtype(r.getOutputDtype())
                .setOutputs(WireTensors.encode(y, 0, n * h, r.getOutputDtype())).build());
        out.onCompleted();
    }

    /** Each message of the stream is one call, handled as {@link #computeExperts} handles it, answered with its id. */
    @Override
    public StreamObserver<ExpertStreamRequest> computeExpertsStream(StreamObserver<ExpertStreamResponse> out) {
        openStreams.incrementAndGet();
        return new StreamObserver<>() {
            @Override
            public void onNext(ExpertStreamRequest m) {
                streamCalls.incrementAndGet();
                lastStreamTimeoutMicros = m.getTimeoutMicros();
                computeExperts(m.getRequest(), new StreamObserver<>() {
                    @Override
                    public void onNext(ExpertBatchResponse r) {
                        out.onNext(ExpertStreamResponse.newBuilder().setCallId(m.getCallId()).setResponse(r).build());
                    }

                    @Override
                    public void onError(Throwable t) {
                        Status s = Status.fromThrowable(t);
                        out.onNext(ExpertStreamResponse.newBuilder().setCallId(m.getCallId()).setStatusCode(s.getCode().value())
                                .setStatusDescription(s.getDescription() == null ? "" : s.getDescription()).build());
                    }

                    @Override
                    public void onCompleted() {
                        // the answer went with onNext
                    }
                });
            }

            @Override
            public void onError(Throwable t) {
                // the router went away
                openStreams.decrementAndGet();
            }

            @Override
            public void onCompleted() {
                openStreams.decrementAndGet();
                out.onCompleted();
            }
        };
    }

    @Override
    public void describePod(DescribePodRequest request, StreamObserver<PodDescription> out) {
        PodDescription.Builder d = PodDescription.newBuilder().setModelId(describedModel).setHiddenSize(config.hiddenSize())
                .setNumLayers(config.numLayers()).setNumExperts(config.moe().numFfnExperts()).setPodName("pod-" + port)
                .setState(draining ? ServingState.SERVING_STATE_DRAINING : ServingState.SERVING_STATE_SERVING);
        for (int l = 0; l < config.numLayers(); l++) {
            int[] ids = store.hostedExperts(l);
            if (ids.length == 0) continue;
            HostedLayer.Builder hl = HostedLayer.newBuilder().setLayer(l);
            for (int e : ids) hl.addExperts(e);
            d.addLayers(hl);
        }
        out.onNext(d.build());
        out.onCompleted();
    }

    @Override
    public void close() throws InterruptedException {
        kill();
        checkpoint.close();
    }
}
