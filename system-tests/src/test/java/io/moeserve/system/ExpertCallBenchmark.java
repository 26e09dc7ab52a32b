package io.moeserve.system;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.stub.StreamObserver;
import io.moeserve.proto.WireTensors;
import io.moeserve.proto.expert.v1.ExpertBatchRequest;
import io.moeserve.proto.expert.v1.ExpertBatchResponse;
import io.moeserve.proto.expert.v1.ExpertServiceGrpc;
import io.moeserve.proto.expert.v1.WireDType;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * What one expert call costs beyond its arithmetic: one expert pod (every expert of the model, the kernel threads
 * given), called by one client the way the router calls it (async stub, direct executor, one call at a time),
 * with calls of 1 and 16 tokens, each either with no (expert, weight) pairs (nothing to compute: the cost of the
 * call itself) or routed top-k at random; each back to back, and with the client idle for a while before each call,
 * as the router is between one layer's call and the next (its own work) or waiting for another pod. Reports the
 * client's round trip, how long the stub call took to return (the caller's share of sending), the compute time
 * the pod reports in its answer, and the round trip outside it: parsing, packing, gRPC, the wire and the
 * wake-ups on both sides. Usage: scripts/bench-expert-call.sh [MODEL_DIR [CALLS [POD_THREADS [IDLE_MICROS]]]].
 */
public final class ExpertCallBenchmark {

    public static void main(String[] args) throws Exception {
        Path model = Path.of(args.length > 0 ? args[0] : "models/bench").toAbsolutePath();
        int calls = args.length > 1 ? Integer.parseInt(args[1]) : 2000;
        int podThreads = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        long idleMicros = args.length > 3 ? Long.parseLong(args[3]) : 4000;
        ModelConfig config = ConfigParser.load(model);
        int hidden = config.hiddenSize();
        int layer = 0;
        while (!config.isSparse(layer)) layer++;
        System.out.printf(Locale.ROOT, "model %s (hidden %d, %d experts top-%d), %d calls per row, %d kernel threads in the pod, %d cores%n",
                model, hidden, config.moe().numFfnExperts(), config.moe().topK(), calls, podThreads,
                Runtime.getRuntime().availableProcessors());
        try (Deployment deployment = new Deployment(model, "bench", podThreads)) {
            ServiceProcess pod = deployment.startExpert("all", "*").awaitReady(Deployment.START);
            ManagedChannel channel = Grpc.newChannelBuilderForAddress("127.0.0.1", pod.grpcPort, InsecureChannelCredentials.create())
                    .directExecutor().disableRetry().maxInboundMessageSize(256 << 20).build();
            try {
                ExpertServiceGrpc.ExpertServiceStub stub = ExpertServiceGrpc.newStub(channel);
                System.out.println();
                System.out.println("| tokens per call | pairs | client idle before each call µs | round trip mean / p50 / p99 µs"
                        + " | stub call returns after µs | pod compute µs | pod queue µs | round trip outside compute µs |");
                System.out.println("| --- | --- | --- | --- | --- | --- | --- | --- |");
                for (int tokens : new int[] {1, 16}) {
                    for (boolean routed : new boolean[] {false, true}) {
                        ExpertBatchRequest request = request(config, layer, tokens, routed);
                        measure(stub, request, Math.max(500, calls / 2), 0); // warm-up: C2 on both sides
                        for (long idle : new long[] {0, idleMicros}) {
                            Measured m = measure(stub, request, calls, idle * 1000);
                            System.out.printf(Locale.ROOT, "| %d | %s | %d | %.0f / %.0f / %.0f | %.0f | %.0f | %.0f | %.0f |%n", tokens,
                                    routed ? "top-" + config.moe().topK() : "none", idle, m.meanNanos / 1e3, m.p50Nanos / 1e3,
                                    m.p99Nanos / 1e3, m.sendNanos / 1e3, m.computeNanos / 1e3, m.queueNanos / 1e3,
                                    (m.meanNanos - m.computeNanos) / 1e3);
                        }
                    }
                }
            } finally {
                channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        }
    }

    private static ExpertBatchRequest request(ModelConfig config, int layer, int tokens, boolean routed) {
        int hidden = config.hiddenSize();
        int k = config.moe().topK();
        int experts = config.moe().numFfnExperts();
        Random random = new Random(7);
        float[] x = new float[tokens * hidden];
        for (int i = 0; i < x.length; i++) x[i] = (float) random.nextGaussian();
        ExpertBatchRequest.Builder b = ExpertBatchRequest.newBuilder().setModelId("bench").setRoutingTableVersion(1)
                .setLayer(layer).setNumTokens(tokens).setHiddenSize(hidden).setDtype(WireDType.WIRE_DTYPE_F32)
                .setOutputDtype(WireDType.WIRE_DTYPE_F32).setHiddenStates(WireTensors.encode(x, 0, x.length,
                        WireDType.WIRE_DTYPE_F32)).addPairOffsets(0);
        int pairs = 0;
        for (int t = 0; t < tokens; t++) {
            if (routed) {
                int first = random.nextInt(experts);
                for (int j = 0; j < k; j++) b.addExpertIds((first + j) % experts).addRoutingWeights(1f / k);
                pairs += k;
            }
            b.addPairOffsets(pairs);
        }
        return b.build();
    }

    /** Means over the calls (and the round trip's median and 99th percentile), in ns. */
    private record Measured(double meanNanos, long p50Nanos, long p99Nanos, double sendNanos, double computeNanos, double queueNanos) {}

    private static Measured measure(ExpertServiceGrpc.ExpertServiceStub stub, ExpertBatchRequest request, int calls, long idleNanos)
            throws Exception {
        long[] rtt = new long[calls];
        long send = 0, compute = 0, queue = 0;
        for (int i = 0; i < calls; i++) {
            if (idleNanos > 0) LockSupport.parkNanos(idleNanos);
            CompletableFuture<ExpertBatchResponse> f = new CompletableFuture<>();
            long began = System.nanoTime();
            stub.withDeadlineAfter(10, TimeUnit.SECONDS).computeExperts(request, new StreamObserver<>() {
                ExpertBatchResponse response;

                @Override
                public void onNext(ExpertBatchResponse value) {
                    response = value;
                }

                @Override
                public void onError(Throwable t) {
                    f.completeExceptionally(t);
                }

                @Override
                public void onCompleted() {
                    f.complete(response);
                }
            });
            send += System.nanoTime() - began;
            ExpertBatchResponse r = f.get(10, TimeUnit.SECONDS);
            rtt[i] = System.nanoTime() - began;
            compute += r.getComputeMicros() * 1000;
            queue += r.getQueueMicros() * 1000;
        }
        long[] sorted = rtt.clone();
        Arrays.sort(sorted);
        return new Measured((double) Arrays.stream(rtt).sum() / calls, sorted[calls / 2], sorted[Math.min(calls - 1, calls * 99 / 100)],
                (double) send / calls, (double) compute / calls, (double) queue / calls);
    }
}
