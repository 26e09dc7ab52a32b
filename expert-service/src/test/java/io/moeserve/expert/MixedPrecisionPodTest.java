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
import io.moeserve.runtime.quantize.CheckpointQuantizer;
import io.moeserve.runtime.quantize.MixedPrecision;
import io.moeserve.runtime.quantize.TargetFormat;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A pod serving a mixed-precision checkpoint as shipped (experts at int2, int3, int4 and int8, one compressed-tensors
 * config group per width) reports each layer's formats and computes what the runtime computes in process with the
 * same checkpoint, bit for bit.
 */
@QuarkusTest
@QuarkusTestResource(value = MixedPrecisionPodTest.MixedPod.class, restrictToAnnotatedClass = true)
class MixedPrecisionPodTest {
    private static final int[] WIDTHS = {2, 3, 4, 8};

    /** The tiny checkpoint, written with expert x of layer l at WIDTHS[(l + x) % 4] in groups of 16 columns. */
    public static class MixedPod extends TinyCheckpointResource {
        /** The pod serves the model under its directory's name. */
        static final String MODEL_ID = "tiny-mixtral-mixed";
        static Path mixed;

        /** After ExpertServiceTest's TinyCheckpointResource, which applies to every test: this model path wins. */
        @Override
        public int order() {
            return 100;
        }

        @Override
        public Map<String, String> start() {
            Map<String, String> settings = new HashMap<>(super.start());
            ModelConfig config = ConfigParser.load(dir);
            int[][] bits = new int[config.numLayers()][];
            for (int l = 0; l < bits.length; l++) {
                bits[l] = new int[config.isSparse(l) ? config.moe().numFfnExperts() : 0];
                for (int x = 0; x < bits[l].length; x++) bits[l][x] = WIDTHS[(l + x) % WIDTHS.length];
            }
            mixed = dir.resolveSibling(MODEL_ID);
            CheckpointQuantizer.quantize(dir, mixed, CheckpointQuantizer.Options.mixed(
                    CheckpointQuantizer.expertFormats(dir, new MixedPrecision.Plan(bits, null)), TargetFormat.KEEP, TargetFormat.KEEP, 16));
            settings.put("moe.model.path", mixed.toString());
            return settings;
        }
    }

    @Test
    void servesMixedExpertsAsShippedAndComputesWhatTheRuntimeComputes() throws InterruptedException {
        ManagedChannel channel = ManagedChannelBuilder.forAddress("localhost", 19182).usePlaintext().build();
        try {
            ExpertServiceGrpc.ExpertServiceBlockingStub stub = ExpertServiceGrpc.newBlockingStub(channel);
            PodDescription d = awaitServing(stub);
            // Layer 1 hosts experts 0-3 at widths 3, 4, 8, 2.
            assertEquals("int3 1x16, int4 1x16, int8 1x16, int2 1x16", d.getLayers(1).getWeightDtype());
            ModelConfig config = ConfigParser.load(MixedPod.mixed);
            int h = config.hiddenSize();
            int k = config.moe().topK();
            int n = 6;
            float[] x = new float[n * h];
            for (int i = 0; i < x.length; i++) x[i] = (float) Math.sin(i * 0.37);
            int[] experts = new int[n * k];
            float[] weights = new float[n * k];
            ExpertBatchRequest.Builder b = ExpertBatchRequest.newBuilder().setModelId(MixedPod.MODEL_ID)
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
            try (Checkpoint ck = Checkpoint.open(MixedPod.mixed)) {
                new LocalExpertExecutor(ExpertLoader.loadHosted(config, ck, ExpertSelection.ALL), new CpuMatmulKernels(Parallel.shared()), n, k)
                        .computeExperts(0, 1, n, k, x, experts, weights, expected);
            }
            assertArrayEquals(expected, got, "the pod's mixed-precision experts differ from the runtime's");
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
