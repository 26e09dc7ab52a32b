package io.moeserve.expert;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import io.moeserve.proto.WireTensors;
import io.moeserve.proto.expert.v1.DescribePodRequest;
import io.moeserve.proto.expert.v1.ExpertBatchRequest;
import io.moeserve.proto.expert.v1.ExpertBatchResponse;
import io.moeserve.proto.expert.v1.ExpertServiceGrpc;
import io.moeserve.proto.expert.v1.ExpertStreamRequest;
import io.moeserve.proto.expert.v1.ExpertStreamResponse;
import io.moeserve.proto.expert.v1.PodDescription;
import io.moeserve.proto.expert.v1.ServingState;
import io.moeserve.proto.expert.v1.WireDType;
import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.expert.ExpertLoader;
import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.expert.LocalExpertExecutor;
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The expert pod over real gRPC: what it hosts, what it computes, what it refuses, how it batches and reports. */
@QuarkusTest
@QuarkusTestResource(TinyCheckpointResource.class)
class ExpertServiceTest {
    private static ManagedChannel channel;
    private static ExpertServiceGrpc.ExpertServiceBlockingStub stub;
    private static ExpertServiceGrpc.ExpertServiceFutureStub async;
    private static ModelConfig config;

    protected int grpcPort() {
        return 19182;
    }

    @BeforeAll
    static void connect() {
        channel = ManagedChannelBuilder.forAddress("localhost", 19182).usePlaintext().maxInboundMessageSize(64 << 20).build();
        stub = ExpertServiceGrpc.newBlockingStub(channel);
        async = ExpertServiceGrpc.newFutureStub(channel);
        config = ConfigParser.load(TinyCheckpointResource.dir);
    }

    @AfterAll
    static void close() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    private static PodDescription awaitServing() throws InterruptedException {
        for (int i = 0; i < 600; i++) {
            PodDescription d = stub.describePod(DescribePodRequest.getDefaultInstance());
            if (d.getState() == ServingState.SERVING_STATE_SERVING) return d;
            Thread.sleep(50);
        }
        throw new AssertionError("the pod never became ready");
    }

    /** A request for n tokens, each routed to two distinct experts among {@code allowed}. */
    private static ExpertBatchRequest request(int n, int[] allowed, long seed, float[] xOut, int[] expertsOut, float[] weightsOut) {
        Random r = new Random(seed);
        int h = config.hiddenSize();
        int k = config.moe().topK();
        float[] x = xOut != null ? xOut : new float[n * h];
        for (int i = 0; i < n * h; i++) x[i] = (float) r.nextGaussian();
        ExpertBatchRequest.Builder b = ExpertBatchRequest.newBuilder().setModelId(TinyCheckpointResource.MODEL_ID)
                .setRoutingTableVersion(7).setLayer(1).setNumTokens(n).setHiddenSize(h).setDtype(WireDType.WIRE_DTYPE_F32)
                .setHiddenStates(WireTensors.encode(x, 0, n * h, WireDType.WIRE_DTYPE_F32)).addPairOffsets(0);
        int pairs = 0;
        for (int t = 0; t < n; t++) {
            int e1 = allowed[r.nextInt(allowed.length)];
            int e2 = allowed[(indexOf(allowed, e1) + 1 + r.nextInt(allowed.length - 1)) % allowed.length];
            float w1 = r.nextFloat();
            int count = t % 3 == 2 ? 1 : 2; // some tokens have only one of their experts here
            b.addExpertIds(e1).addRoutingWeights(w1);
            if (expertsOut != null) {
                java.util.Arrays.fill(expertsOut, t * k, t * k + k, -1);
                expertsOut[t * k] = e1;
                weightsOut[t * k] = w1;
            }
            if (count == 2) {
                b.addExpertIds(e2).addRoutingWeights(1 - w1);
                if (expertsOut != null) {
                    expertsOut[t * k + 1] = e2;
                    weightsOut[t * k + 1] = 1 - w1;
                }
            }
            pairs += count;
            b.addPairOffsets(pairs);
        }
        return b.build();
    }

    private static int indexOf(int[] a, int v) {
        for (int i = 0; i < a.length; i++) if (a[i] == v) return i;
        return -1;
    }

    private static float[] reference(int n, float[] x, int[] experts, float[] weights) {
        try (Checkpoint ck = Checkpoint.open(TinyCheckpointResource.dir)) {
            LocalExpertExecutor local = new LocalExpertExecutor(ExpertLoader.loadHosted(config, ck, ExpertSelection.ALL),
                    new CpuMatmulKernels(Parallel.shared()), n, config.moe().topK());
            float[] out = new float[n * config.hiddenSize()];
            local.computeExperts(0, 1, n, config.moe().topK(), x, experts, weights, out);
            return out;
        }
    }

    @Test
    void describesWhatItHosts() throws InterruptedException {
        PodDescription d = awaitServing();
        assertEquals(TinyCheckpointResource.MODEL_ID, d.getModelId());
        assertEquals("MixtralForCausalLM", d.getArchitecture());
        assertEquals(config.numSparseLayers(), d.getLayersCount());
        assertEquals(List.of(0, 1, 2, 3), d.getLayers(0).getExpertsList());
        assertEquals("F32", d.getLayers(0).getWeightDtype());
        assertEquals(7, d.getRoutingTableVersion());
        assertTrue(d.getBackend().startsWith("cpu-vector"), d.getBackend());
    }

    @Test
    void computesWhatTheRuntimeComputes() throws InterruptedException {
        awaitServing();
        int n = 100; // more than max-batch-tokens (64): computed in chunks
        int h = config.hiddenSize();
        int k = config.moe().topK();
        float[] x = new float[n * h];
        int[] experts = new int[n * k];
        float[] weights = new float[n * k];
        ExpertBatchRequest req = request(n, new int[] {0, 1, 2, 3}, 11, x, experts, weights);
        ExpertBatchResponse resp = stub.computeExperts(req);
        assertEquals(n, resp.getNumTokens());
        assertEquals(7, resp.getRoutingTableVersion());
        float[] got = new float[n * h];
        WireTensors.decode(resp.getOutputs(), resp.getDtype(), got, 0, n * h);
        assertArrayEquals(reference(n, x, experts, weights), got, "the pod's sums differ from the runtime's");
    }

    @Test
    void answersInBf16WhenAsked() throws InterruptedException {
        awaitServing();
        int n = 5;
        int h = config.hiddenSize();
        int k = config.moe().topK();
        float[] x = new float[n * h];
        int[] experts = new int[n * k];
        float[] weights = new float[n * k];
        ExpertBatchRequest req = request(n, new int[] {0, 1, 2, 3}, 12, x, experts, weights).toBuilder()
                .setOutputDtype(WireDType.WIRE_DTYPE_BF16).build();
        ExpertBatchResponse resp = stub.computeExperts(req);
        assertEquals(WireDType.WIRE_DTYPE_BF16, resp.getDtype());
        assertEquals(n * h * 2, resp.getOutputs().size());
        float[] got = new float[n * h];
        WireTensors.decode(resp.getOutputs(), resp.getDtype(), got, 0, n * h);
        float[] ref = reference(n, x, experts, weights);
        for (int i = 0; i < ref.length; i++) assertEquals(ref[i], got[i], Math.abs(ref[i]) / 128 + 1e-6f, "element " + i);
    }

    @Test
    void concurrentCallsAreBatchedAndEachGetsItsOwnAnswer() throws Exception {
        awaitServing();
        int calls = 12;
        int h = config.hiddenSize();
        int k = config.moe().topK();
        List<float[]> xs = new ArrayList<>();
        List<int[]> es = new ArrayList<>();
        List<float[]> ws = new ArrayList<>();
        List<com.google.common.util.concurrent.ListenableFuture<ExpertBatchResponse>> futures = new ArrayList<>();
        for (int c = 0; c < calls; c++) {
            int n = c == 0 ? 400 : 3 + c;
            float[] x = new float[n * h];
            int[] e = new int[n * k];
            float[] w = new float[n * k];
            ExpertBatchRequest req = request(n, new int[] {0, 1, 2, 3}, 100 + c, x, e, w);
            xs.add(x);
            es.add(e);
            ws.add(w);
            futures.add(async.computeExperts(req));
        }
        int maxBatched = 0;
        for (int c = 0; c < calls; c++) {
            ExpertBatchResponse resp = futures.get(c).get(30, TimeUnit.SECONDS);
            int n = xs.get(c).length / h;
            float[] got = new float[n * h];
            WireTensors.decode(resp.getOutputs(), resp.getDtype(), got, 0, n * h);
            assertArrayEquals(reference(n, xs.get(c), es.get(c), ws.get(c)), got, "call " + c);
            maxBatched = Math.max(maxBatched, resp.getBatchedCalls());
        }
        assertTrue(maxBatched > 1, "calls queued behind a long one are computed together (max batched " + maxBatched + ")");
    }

    @Test
    void refusesWhatItCannotServe() throws InterruptedException {
        awaitServing();
        ExpertBatchRequest ok = request(4, new int[] {0, 1, 2, 3}, 5, null, null, null);
        assertStatus(Status.Code.FAILED_PRECONDITION, "serves model 'tiny-mixtral'", ok.toBuilder().setModelId("other").build());
        assertStatus(Status.Code.FAILED_PRECONDITION, "routing table version 7", ok.toBuilder().setRoutingTableVersion(3).build());
        assertStatus(Status.Code.FAILED_PRECONDITION, "of layer 1 is not hosted by this pod (it hosts *:0-3)",
                request(4, new int[] {4, 5, 6, 7}, 6, null, null, null));
        assertStatus(Status.Code.INVALID_ARGUMENT, "hidden_states has",
                ok.toBuilder().setNumTokens(5).addPairOffsets(ok.getExpertIdsCount()).build());
        assertStatus(Status.Code.INVALID_ARGUMENT, "pair_offsets has", ok.toBuilder().addPairOffsets(1).build());
        assertStatus(Status.Code.INVALID_ARGUMENT, "not a MoE layer", ok.toBuilder().setLayer(99).build());
        assertStatus(Status.Code.INVALID_ARGUMENT, "not finite", ok.toBuilder().setRoutingWeights(0, Float.NaN).build());
        assertStatus(Status.Code.INVALID_ARGUMENT, "num_tokens must be at least 1", ok.toBuilder().setNumTokens(0).build());
        // And it still serves.
        assertEquals(4, stub.computeExperts(ok).getNumTokens());
    }

    @Test
    void answersEachCallOnTheStreamWithItsIdAsTheUnaryCallWould() throws Exception {
        awaitServing();
        Map<Long, ExpertStreamResponse> answers = new ConcurrentHashMap<>();
        CompletableFuture<Void> ended = new CompletableFuture<>();
        StreamObserver<ExpertStreamRequest> requests = ExpertServiceGrpc.newStub(channel).computeExpertsStream(new StreamObserver<>() {
            @Override
            public void onNext(ExpertStreamResponse m) {
                answers.put(m.getCallId(), m);
            }

            @Override
            public void onError(Throwable t) {
                ended.completeExceptionally(t);
            }

            @Override
            public void onCompleted() {
                ended.complete(null);
            }
        });
        List<ExpertBatchRequest> sent = new ArrayList<>();
        for (int c = 0; c < 8; c++) {
            // Call 3 is refused (another model); the stream goes on, and so do the calls after it.
            ExpertBatchRequest req = request(1 + c * 3, new int[] {0, 1, 2, 3}, 300 + c, null, null, null);
            if (c == 3) req = req.toBuilder().setModelId("other").build();
            sent.add(req);
            requests.onNext(ExpertStreamRequest.newBuilder().setCallId(1000 + c).setRequest(req).build());
        }
        requests.onCompleted();
        ended.get(30, TimeUnit.SECONDS); // the pod ends its side once every call is answered
        assertEquals(8, answers.size());
        for (int c = 0; c < 8; c++) {
            ExpertStreamResponse m = answers.get(1000L + c);
            if (c == 3) {
                assertEquals(Status.Code.FAILED_PRECONDITION.value(), m.getStatusCode());
                assertTrue(m.getStatusDescription().contains("serves model 'tiny-mixtral'"), m.getStatusDescription());
                continue;
            }
            assertEquals(0, m.getStatusCode(), m.getStatusDescription());
            assertEquals(stub.computeExperts(sent.get(c)).getOutputs(), m.getResponse().getOutputs(), "call " + c);
        }
    }

    private static void assertStatus(Status.Code code, String message, ExpertBatchRequest req) {
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> stub.computeExperts(req));
        assertEquals(code, e.getStatus().getCode(), e.getStatus().toString());
        assertTrue(e.getStatus().getDescription().contains(message), e.getStatus().getDescription());
    }

    @Test
    void exportsPerExpertMetricsAndReadiness() throws InterruptedException {
        awaitServing();
        stub.computeExperts(request(6, new int[] {0, 1, 2, 3}, 9, null, null, null));
        given().get("/q/health/ready").then().statusCode(200).body(containsString("\"hosts\": \"*:0-3\""));
        given().get("/q/metrics").then().statusCode(200)
                .body(containsString("moe_expert_tokens_total{expert=\"0\",group=\"g-low\",layer=\"1\"}"))
                .body(containsString("moe_expert_busy_seconds_total{expert="))
                .body(containsString("moe_expert_batch_tokens_count{expert="))
                .body(containsString("moe_expert_pod_tokens_total{group=\"g-low\"}"))
                .body(containsString("moe_expert_pod_busy_seconds_total{group=\"g-low\"}"))
                .body(containsString("moe_expert_pod_queue_wait_seconds_bucket{group=\"g-low\",le="))
                .body(containsString("moe_expert_pod_queued_tokens{group=\"g-low\"}"))
                .body(containsString("moe_expert_pod_in_flight_calls{group=\"g-low\"}"));
    }
}
