package io.moeserve.system;

import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.stub.StreamObserver;
import io.moeserve.proto.WireTensors;
import io.moeserve.proto.expert.v1.ExpertBatchRequest;
import io.moeserve.proto.expert.v1.ExpertBatchResponse;
import io.moeserve.proto.expert.v1.ExpertServiceGrpc;
import io.moeserve.proto.expert.v1.ExpertStreamRequest;
import io.moeserve.proto.expert.v1.ExpertStreamResponse;
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
 * wake-ups on both sides. Each row is measured with both transports the router has
 * ({@code moe.router.experts.transport}): a unary call per call, and one message each way on a long-lived
 * ComputeExpertsStream; the calls of a row are split into rounds that alternate between the two, so that the
 * machine's drift falls on both alike. Usage: scripts/bench-expert-call.sh [MODEL_DIR [CALLS [POD_THREADS
 * [IDLE_MICROS [ROUNDS]]]]].
 */
public final class ExpertCallBenchmark {

    public static void main(String[] args) throws Exception {
        Path model = Path.of(args.length > 0 ? args[0] : "models/bench").toAbsolutePath();
        int calls = args.length > 1 ? Integer.parseInt(args[1]) : 2000;
        int podThreads = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        long idleMicros = args.length > 3 ? Long.parseLong(args[3]) : 4000;
        int rounds = args.length > 4 ? Integer.parseInt(args[4]) : 4;
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
            CallStream stream = null;
            try {
                ExpertServiceGrpc.ExpertServiceStub stub = ExpertServiceGrpc.newStub(channel);
                stream = new CallStream(stub);
                Caller[] transports = {new Unary(stub), stream};
                System.out.println();
                System.out.println("| tokens per call | pairs | client idle before each call µs | transport | round trip mean / p50 / p99 µs"
                        + " | p50 per round µs (min–max) | stub call returns after µs | pod compute µs | pod queue µs"
                        + " | round trip outside compute µs |");
                System.out.println("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
                for (int tokens : new int[] {1, 16}) {
                    for (boolean routed : new boolean[] {false, true}) {
                        ExpertBatchRequest request = request(config, layer, tokens, routed);
                        for (Caller c : transports) measure(c, request, Math.max(500, calls / 2), 0); // warm-up: C2 on both sides
                        for (long idle : new long[] {0, idleMicros}) {
                            long[][] rtt = new long[transports.length][];
                            double[][] roundP50 = new double[transports.length][rounds];
                            Measured[] sums = new Measured[transports.length];
                            for (int round = 0; round < rounds; round++) {
                                for (int t = 0; t < transports.length; t++) {
                                    Measured m = measure(transports[t], request, Math.max(1, calls / rounds), idle * 1000);
                                    roundP50[t][round] = m.p50Nanos / 1e3;
                                    rtt[t] = rtt[t] == null ? m.rtt : concat(rtt[t], m.rtt);
                                    sums[t] = sums[t] == null ? m : sums[t].plus(m);
                                }
                            }
                            for (int t = 0; t < transports.length; t++) {
                                long[] sorted = rtt[t].clone();
                                Arrays.sort(sorted);
                                int n = sorted.length;
                                double mean = Arrays.stream(sorted).average().orElse(0);
                                System.out.printf(Locale.ROOT, "| %d | %s | %d | %s | %.0f / %.0f / %.0f | %.0f–%.0f | %.0f | %.0f | %.0f | %.0f |%n",
                                        tokens,
                                        routed ? "top-" + config.moe().topK() : "none", idle, transports[t].name(), mean / 1e3,
                                        sorted[n / 2] / 1e3, sorted[Math.min(n - 1, n * 99 / 100)] / 1e3,
                                        Arrays.stream(roundP50[t]).min().orElse(0), Arrays.stream(roundP50[t]).max().orElse(0),
                                        sums[t].sendNanos / rounds / 1e3, sums[t].computeNanos / rounds / 1e3,
                                        sums[t].queueNanos / rounds / 1e3, (mean - sums[t].computeNanos / rounds) / 1e3);
                            }
                        }
                    }
                }
            } finally {
                if (stream != null) stream.close();
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

    private static long[] concat(long[] a, long[] b) {
        long[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    /** Means over the calls, in ns, and every call's round trip. */
    private record Measured(long[] rtt, long p50Nanos, double sendNanos, double computeNanos, double queueNanos) {
        Measured plus(Measured o) {
            return new Measured(null, 0, sendNanos + o.sendNanos, computeNanos + o.computeNanos, queueNanos + o.queueNanos);
        }
    }

    /** Sends one call the way the router does with one transport; the answer completes {@code answer}. */
    private interface Caller {
        String name();

        void call(ExpertBatchRequest request, CompletableFuture<ExpertBatchResponse> answer);
    }

    /** One unary call per call, as {@code moe.router.experts.transport=unary}. */
    private record Unary(ExpertServiceGrpc.ExpertServiceStub stub) implements Caller {
        @Override
        public String name() {
            return "unary";
        }

        @Override
        public void call(ExpertBatchRequest request, CompletableFuture<ExpertBatchResponse> answer) {
            stub.withDeadlineAfter(10, TimeUnit.SECONDS).computeExperts(request, new StreamObserver<>() {
                ExpertBatchResponse response;

                @Override
                public void onNext(ExpertBatchResponse value) {
                    response = value;
                }

                @Override
                public void onError(Throwable t) {
                    answer.completeExceptionally(t);
                }

                @Override
                public void onCompleted() {
                    answer.complete(response);
                }
            });
        }
    }

    /** One message each way on a long-lived stream, as {@code moe.router.experts.transport=stream}; one call at a time. */
    private static final class CallStream implements Caller, StreamObserver<ExpertStreamResponse> {
        private final StreamObserver<ExpertStreamRequest> requests;
        private volatile CompletableFuture<ExpertBatchResponse> pending;
        private long id;

        CallStream(ExpertServiceGrpc.ExpertServiceStub stub) {
            requests = stub.computeExpertsStream(this);
        }

        @Override
        public String name() {
            return "stream";
        }

        @Override
        public void call(ExpertBatchRequest request, CompletableFuture<ExpertBatchResponse> answer) {
            pending = answer;
            requests.onNext(ExpertStreamRequest.newBuilder().setCallId(++id).setRequest(request).build());
        }

        @Override
        public void onNext(ExpertStreamResponse m) {
            if (m.getCallId() != id) {
                pending.completeExceptionally(new IllegalStateException("answer " + m.getCallId() + " to call " + id));
            } else if (m.getStatusCode() != 0) {
                pending.completeExceptionally(new IllegalStateException("status " + m.getStatusCode() + ": " + m.getStatusDescription()));
            } else {
                pending.complete(m.getResponse());
            }
        }

        @Override
        public void onError(Throwable t) {
            if (pending != null) pending.completeExceptionally(t);
        }

        @Override
        public void onCompleted() {
            if (pending != null) pending.completeExceptionally(new IllegalStateException("the pod ended the stream"));
        }

        void close() {
            requests.onCompleted();
        }
    }

    private static Measured measure(Caller caller, ExpertBatchRequest request, int calls, long idleNanos) throws Exception {
        long[] rtt = new long[calls];
        long send = 0, compute = 0, queue = 0;
        for (int i = 0; i < calls; i++) {
            if (idleNanos > 0) LockSupport.parkNanos(idleNanos);
            CompletableFuture<ExpertBatchResponse> f = new CompletableFuture<>();
            long began = System.nanoTime();
            caller.call(request, f);
            send += System.nanoTime() - began;
            ExpertBatchResponse r = f.get(10, TimeUnit.SECONDS);
            rtt[i] = System.nanoTime() - began;
            compute += r.getComputeMicros() * 1000;
            queue += r.getQueueMicros() * 1000;
        }
        long[] sorted = rtt.clone();
        Arrays.sort(sorted);
        return new Measured(rtt, sorted[calls / 2], (double) send / calls, (double) compute / calls, (double) queue / calls);
    }
}
