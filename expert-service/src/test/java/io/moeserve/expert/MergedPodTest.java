package io.moeserve.expert;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moeserve.proto.WireTensors;
import io.moeserve.proto.expert.v1.DescribePodRequest;
import io.moeserve.proto.expert.v1.ExpertBatchRequest;
import io.moeserve.proto.expert.v1.ExpertBatchResponse;
import io.moeserve.proto.expert.v1.ExpertServiceGrpc;
import io.moeserve.proto.expert.v1.HostedLayer;
import io.moeserve.proto.expert.v1.PodDescription;
import io.moeserve.proto.expert.v1.ServingState;
import io.moeserve.proto.expert.v1.WireDType;
import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.expert.CheckpointExpertStore;
import io.moeserve.runtime.expert.ExpertLoader;
import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.expert.LocalExpertExecutor;
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import io.moeserve.runtime.merge.CheckpointMerger;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * A pod serving a merged checkpoint ({@code moe merge}: the gate keeps N outputs, M merged experts are stored) with
 * every expert hosted is sized to the M merged experts: it describes M experts per layer and their bytes, not N,
 * exports load meters for the M, refuses an id past them, and computes what the runtime computes in process.
 */
@QuarkusTest
@QuarkusTestResource(value = MergedPodTest.MergedPod.class, restrictToAnnotatedClass = true)
class MergedPodTest {
    private static final int MERGED = 5;

    /** The tiny checkpoint merged to {@link #MERGED} experts per layer, all hosted by the pod. */
    public static class MergedPod extends TinyCheckpointResource {
        static final String MODEL_ID = "tiny-mixtral-merged";
        static Path merged;

        /** After ExpertServiceTest's TinyCheckpointResource, which applies to every test: this model path wins. */
        @Override
        public int order() {
            return 100;
        }

        @Override
        public Map<String, String> start() {
            Map<String, String> settings = new HashMap<>(super.start());
            ModelConfig config = ConfigParser.load(dir);
            double[][] importance = new double[config.numLayers()][config.moe().numExperts()];
            for (int l = 0; l < importance.length; l++) for (int e = 0; e < importance[l].length; e++) importance[l][e] = (3 * e + l) % 7 + 1;
            merged = dir.resolveSibling(MODEL_ID);
            CheckpointMerger.write(dir, merged, CheckpointMerger.groups(dir, importance, MERGED), importance, true);
            settings.put("moe.model.path", merged.toString());
            settings.put("moe.expert.hosts", "*");
            return settings;
        }
    }

    @Test
    void aPodServingAMergedCheckpointHostsReportsAndComputesTheMergedExperts() throws InterruptedException {
        ManagedChannel channel = ManagedChannelBuilder.forAddress("localhost", 19182).usePlaintext().build();
        try {
            ExpertServiceGrpc.ExpertServiceBlockingStub stub = ExpertServiceGrpc.newBlockingStub(channel);
            PodDescription d = awaitServing(stub);
            ModelConfig config = ConfigParser.load(MergedPod.merged);
            int n = config.moe().numExperts();
            assertTrue(n > MERGED, "the gate keeps its " + n + " outputs");
            assertEquals(MERGED, d.getNumExperts());
            List<Integer> all = IntStream.range(0, MERGED).boxed().toList();
            long original;
            try (Checkpoint ck = Checkpoint.open(MergedPod.dir)) {
                original = ExpertLoader.loadHosted(ConfigParser.load(MergedPod.dir), ck, ExpertSelection.ALL).byteSize();
            }
            long described = 0;
            for (HostedLayer l : d.getLayersList()) {
                assertEquals(all, l.getExpertsList(), "layer " + l.getLayer() + " hosts the merged experts");
                described += l.getWeightBytes();
            }
            assertEquals(original / n * MERGED, described, "the pod holds M experts' bytes, not N");

            int layer = d.getLayers(0).getLayer();
            String metrics = given().get("/q/metrics").then().statusCode(200).extract().asString();
            Matcher m = Pattern.compile("moe_expert_tokens_total\\{expert=\"(\\d+)\",group=\"[^\"]*\",layer=\"" + layer + "\"}")
                    .matcher(metrics);
            TreeSet<Integer> metered = new TreeSet<>();
            while (m.find()) metered.add(Integer.parseInt(m.group(1)));
            assertEquals(all, List.copyOf(metered), "load is reported per merged expert");

            int h = config.hiddenSize();
            int k = config.moe().topK();
            int tokens = 7;
            float[] x = new float[tokens * h];
            for (int i = 0; i < x.length; i++) x[i] = (float) Math.cos(i * 0.29);
            int[] experts = new int[tokens * k];
            float[] weights = new float[tokens * k];
            ExpertBatchRequest.Builder b = ExpertBatchRequest.newBuilder().setModelId(MergedPod.MODEL_ID)
                    .setRoutingTableVersion(7).setLayer(layer).setNumTokens(tokens).setHiddenSize(h).setDtype(WireDType.WIRE_DTYPE_F32)
                    .setHiddenStates(WireTensors.encode(x, 0, tokens * h, WireDType.WIRE_DTYPE_F32)).addPairOffsets(0);
            for (int t = 0; t < tokens; t++) {
                for (int j = 0; j < k; j++) {
                    experts[t * k + j] = (t + 2 * j) % MERGED;
                    weights[t * k + j] = j == 0 ? 0.625f : 0.375f / (k - 1);
                    b.addExpertIds(experts[t * k + j]).addRoutingWeights(weights[t * k + j]);
                }
                b.addPairOffsets(k * (t + 1));
            }
            ExpertBatchRequest request = b.build();
            ExpertBatchResponse resp = stub.computeExperts(request);
            float[] got = new float[tokens * h];
            WireTensors.decode(resp.getOutputs(), resp.getDtype(), got, 0, tokens * h);
            float[] expected = new float[tokens * h];
            try (Checkpoint ck = Checkpoint.open(MergedPod.merged)) {
                CheckpointExpertStore store = ExpertLoader.loadHosted(config, ck, ExpertSelection.ALL);
                assertEquals(MERGED, store.numExperts());
                new LocalExpertExecutor(store, new CpuMatmulKernels(Parallel.shared()), tokens, k)
                        .computeExperts(0, layer, tokens, k, x, experts, weights, expected);
            }
            assertArrayEquals(expected, got, "the pod's merged experts differ from the runtime's");

            StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
                    () -> stub.computeExperts(request.toBuilder().setExpertIds(0, MERGED).build()));
            assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), "an original id past the merged experts: " + e);
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    private static PodDescription awaitServing(ExpertServiceGrpc.ExpertServiceBlockingStub stub) throws InterruptedException {
        for (int i = 0; i < 600; i++) {
            PodDescription d = stub.describePod(DescribePodRequest.getDefaultInstance());
            if (d.getState() == ServingState.SERVING_STATE_SERVING) return d;
            Thread.sleep(50);
        }
        throw new AssertionError("the pod never became ready");
    }
}
