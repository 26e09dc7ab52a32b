package io.moeserve.expert;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.moeserve.proto.WireTensors;
import io.moeserve.proto.expert.v1.DescribePodRequest;
import io.moeserve.proto.expert.v1.ExpertBatchRequest;
import io.moeserve.proto.expert.v1.ExpertBatchResponse;
import io.moeserve.proto.expert.v1.ExpertServiceGrpc;
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
import io.moeserve.runtime.quantize.TargetFormat;
import io.moeserve.runtime.quantize.WeightQuantizer;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import java.lang.foreign.Arena;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A pod told to quantize the float experts it hosts ({@code moe.expert.quantize=int8}) reports them as int8 and
 * computes what the runtime computes with the same experts quantized by {@link WeightQuantizer}, bit for bit.
 */
@QuarkusTest
@QuarkusTestResource(value = QuantizeAtStartTest.Int8Pod.class, restrictToAnnotatedClass = true)
class QuantizeAtStartTest {

    /** The tiny checkpoint pod, told to quantize its experts to int8 in groups of 16 columns. */
    public static class Int8Pod extends TinyCheckpointResource {
        @Override
        public Map<String, String> start() {
            Map<String, String> settings = new HashMap<>(super.start());
            settings.put("moe.expert.quantize", "int8");
            settings.put("moe.expert.quantize-group-size", "16");
            return settings;
        }
    }

    @Test
    void hostsQuantizedExpertsAndComputesWithThem() throws InterruptedException {
        ManagedChannel channel = ManagedChannelBuilder.forAddress("localhost", 19182).usePlaintext().build();
        try {
            ExpertServiceGrpc.ExpertServiceBlockingStub stub = ExpertServiceGrpc.newBlockingStub(channel);
            PodDescription d = awaitServing(stub);
            assertEquals("int8 1x16", d.getLayers(0).getWeightDtype());
            ModelConfig config = ConfigParser.load(TinyCheckpointResource.dir);
            int h = config.hiddenSize();
            int k = config.moe().topK();
            int n = 6;
            float[] x = new float[n * h];
            for (int i = 0; i < x.length; i++) x[i] = (float) Math.sin(i * 0.37);
            int[] experts = new int[n * k];
            float[] weights = new float[n * k];
            ExpertBatchRequest.Builder b = ExpertBatchRequest.newBuilder().setModelId(TinyCheckpointResource.MODEL_ID)
                    .setRoutingTableVersion(7).setLayer(1).setNumTokens(n).setHiddenSize(h).setDtype(WireDType.WIRE_DTYPE_F32)
                    .setHiddenStates(WireTensors.encode(x, 0, n * h, WireDType.WIRE_DTYPE_F32)).addPairOffsets(0);
            for (int t = 0; t < n; t++) {
                experts[t * k] = t % 4;
                experts[t * k + 1] = (t + 1) % 4;
                weights[t * k] = 0.75f;
                weights[t * k + 1] = 0.25f;
                b.addExpertIds(t % 4).addRoutingWeights(0.75f).addExpertIds((t + 1) % 4).addRoutingWeights(0.25f)
                        .addPairOffsets(2 * (t + 1));
            }
            ExpertBatchResponse resp = stub.computeExperts(b.build());
            float[] got = new float[n * h];
            WireTensors.decode(resp.getOutputs(), resp.getDtype(), got, 0, n * h);
            float[] expected = new float[n * h];
            try (Checkpoint ck = Checkpoint.open(TinyCheckpointResource.dir); Arena arena = Arena.ofShared()) {
                var store = ExpertLoader.loadHosted(config, ck, ExpertSelection.ALL)
                        .map(w -> WeightQuantizer.quantize(w, TargetFormat.INT8, 16, arena));
                new LocalExpertExecutor(store, new CpuMatmulKernels(Parallel.shared()), n, k)
                        .computeExperts(0, 1, n, k, x, experts, weights, expected);
            }
            assertArrayEquals(expected, got, "the pod's int8 experts differ from the runtime's");
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
