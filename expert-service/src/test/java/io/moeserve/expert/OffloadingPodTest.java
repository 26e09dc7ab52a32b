package io.moeserve.expert;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.moeserve.proto.WireTensors;
import io.moeserve.proto.expert.v1.DescribePodRequest;
import io.moeserve.proto.expert.v1.ExpertBatchRequest;
import io.moeserve.proto.expert.v1.ExpertBatchResponse;
import io.moeserve.proto.expert.v1.ExpertServiceGrpc;
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
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * A pod whose budget holds two of its experts ({@code moe.expert.offload-budget-bytes}) answers what the runtime
 * computes with every expert in memory, bit for bit, call after call, and its metrics add up: hits plus misses are
 * the distinct experts the calls needed, and the resident bytes stay within the budget.
 */
@QuarkusTest
@QuarkusTestResource(value = OffloadingPodTest.TwoExpertBudget.class, restrictToAnnotatedClass = true)
class OffloadingPodTest {
    static long budget;

    /** The tiny checkpoint pod, hosting experts 0-3 of each layer, with room for two experts. */
    public static class TwoExpertBudget extends TinyCheckpointResource {
        @Override
        public Map<String, String> start() {
            Map<String, String> settings = new HashMap<>(super.start());
            try (Checkpoint ck = Checkpoint.open(dir)) {
                budget = 2 * ExpertLoader.loadHosted(ConfigParser.load(dir), ck, ExpertSelection.ALL).expert(0, 0).byteSize();
            }
            settings.put("moe.expert.offload-budget-bytes", Long.toString(budget));
            return settings;
        }
    }

    @Test
    void answersAsWithEveryExpertInMemoryAndKeepsItsBudget() throws InterruptedException {
        ManagedChannel channel = ManagedChannelBuilder.forAddress("localhost", 19182).usePlaintext().build();
        try {
            ExpertServiceGrpc.ExpertServiceBlockingStub stub = ExpertServiceGrpc.newBlockingStub(channel);
            awaitServing(stub);
            ModelConfig config = ConfigParser.load(TinyCheckpointResource.dir);
            int h = config.hiddenSize();
            int k = config.moe().topK();
            int n = 6;
            long lookups = 0;
            try (Checkpoint ck = Checkpoint.open(TinyCheckpointResource.dir)) {
                var plain = new LocalExpertExecutor(ExpertLoader.loadHosted(config, ck, ExpertSelection.ALL),
                        new CpuMatmulKernels(Parallel.shared()), n, k);
                for (int call = 0; call < 8; call++) {
                    int layer = call % config.numLayers();
                    float[] x = new float[n * h];
                    for (int i = 0; i < x.length; i++) x[i] = (float) Math.sin(i * 0.37 + call);
                    int[] experts = new int[n * k];
                    float[] weights = new float[n * k];
                    ExpertBatchRequest.Builder b = ExpertBatchRequest.newBuilder().setModelId(TinyCheckpointResource.MODEL_ID)
                            .setRoutingTableVersion(7).setLayer(layer).setNumTokens(n).setHiddenSize(h).setDtype(WireDType.WIRE_DTYPE_F32)
                            .setHiddenStates(WireTensors.encode(x, 0, n * h, WireDType.WIRE_DTYPE_F32)).addPairOffsets(0);
                    boolean[] used = new boolean[4];
                    for (int t = 0; t < n; t++) {
                        // All four experts in every call, in an order that moves with the call, so the set of two must turn over.
                        int a = (t % 3 + call) % 4;
                        int c = (a + 1) % 4;
                        experts[t * k] = a;
                        experts[t * k + 1] = c;
                        weights[t * k] = 0.75f;
                        weights[t * k + 1] = 0.25f;
                        used[a] = used[c] = true;
                        b.addExpertIds(a).addRoutingWeights(0.75f).addExpertIds(c).addRoutingWeights(0.25f).addPairOffsets(2 * (t + 1));
                    }
                    for (boolean u : used) if (u) lookups++;
                    ExpertBatchResponse resp = stub.computeExperts(b.build());
                    float[] got = new float[n * h];
                    WireTensors.decode(resp.getOutputs(), resp.getDtype(), got, 0, n * h);
                    float[] expected = new float[n * h];
                    plain.computeExperts(0, layer, n, k, x, experts, weights, expected);
                    assertArrayEquals(expected, got, "call " + call + ": the offloading pod's answer differs");
                }
            }
            String metrics = given().get("/q/metrics").then().statusCode(200).extract().asString();
            double hits = metric(metrics, "moe_expert_offload_hits_total");
            double misses = metric(metrics, "moe_expert_offload_misses_total");
            assertEquals(lookups, hits + misses, metrics);
            assertTrue(misses > 2 && metric(metrics, "moe_expert_offload_evictions_total") > 0, metrics);
            assertTrue(metric(metrics, "moe_expert_offload_resident_bytes") <= budget, metrics);
            assertEquals(budget, metric(metrics, "moe_expert_offload_budget_bytes"), metrics);
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    private static double metric(String text, String name) {
        Matcher m = Pattern.compile("(?m)^" + name + "\\{[^}]*} (\\S+)$").matcher(text);
        assertTrue(m.find(), name + " not exported");
        return Double.parseDouble(m.group(1));
    }

    private static void awaitServing(ExpertServiceGrpc.ExpertServiceBlockingStub stub) throws InterruptedException {
        for (int i = 0; i < 600; i++) {
            if (stub.describePod(DescribePodRequest.getDefaultInstance()).getState() == ServingState.SERVING_STATE_SERVING) return;
            Thread.sleep(50);
        }
        throw new AssertionError("the pod never became ready");
    }
}
