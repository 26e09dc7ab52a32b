package io.moeserve.expert;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moeserve.proto.WireTensors;
import io.moeserve.proto.expert.v1.ExpertBatchRequest;
import io.moeserve.proto.expert.v1.WireDType;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.expert.ExpertSelection;
import java.util.Arrays;

/**
 * Checks a ComputeExperts request against the pod (model, routing-table version, hosted experts) and the contract
 * (shapes, offsets, dtypes, finite weights), and unpacks it. Every refusal names what is wrong: a router with a
 * stale expert map must learn exactly which expert it sent to the wrong pod.
 */
final class ExpertCallParser {
    private final String modelId;
    private final long routingTableVersion;
    private final ModelConfig config;
    private final ExpertSelection hosted;
    private final String hostsSpec;

    ExpertCallParser(String modelId, long routingTableVersion, ModelConfig config, ExpertSelection hosted, String hostsSpec) {
        this.modelId = modelId;
        this.routingTableVersion = routingTableVersion;
        this.config = config;
        this.hosted = hosted;
        this.hostsSpec = hostsSpec;
    }

    ExpertCall parse(ExpertBatchRequest r, long nowNanos) {
        if (!r.getModelId().equals(modelId)) {
            throw error(Status.FAILED_PRECONDITION, "this pod serves model '" + modelId + "', the call is for '" + r.getModelId() + "'");
        }
        if (routingTableVersion != 0 && r.getRoutingTableVersion() != routingTableVersion) {
            throw error(Status.FAILED_PRECONDITION, "this pod serves routing table version " + routingTableVersion
                    + ", the call was routed with version " + r.getRoutingTableVersion());
        }
        int layer = r.getLayer();
        if (layer >= config.numLayers() || !config.isSparse(layer)) {
            throw error(Status.INVALID_ARGUMENT, "layer " + layer + " is not a MoE layer of this model");
        }
        int h = config.hiddenSize();
        if (r.getHiddenSize() != h) {
            throw error(Status.INVALID_ARGUMENT, "hidden_size " + r.getHiddenSize() + " does not match the model's " + h);
        }
        int n = r.getNumTokens();
        if (n == 0) throw error(Status.INVALID_ARGUMENT, "num_tokens must be at least 1");
        if (!WireTensors.isSupported(r.getDtype())) throw error(Status.INVALID_ARGUMENT, "unsupported dtype " + r.getDtype());
        WireDType out = r.getOutputDtype() == WireDType.WIRE_DTYPE_UNSPECIFIED ? r.getDtype() : r.getOutputDtype();
        if (!WireTensors.isSupported(out)) throw error(Status.INVALID_ARGUMENT, "unsupported output_dtype " + r.getOutputDtype());
        if (r.getPairOffsetsCount() != n + 1) {
            throw error(Status.INVALID_ARGUMENT, "pair_offsets has " + r.getPairOffsetsCount() + " entries, expected num_tokens + 1 = " + (n + 1));
        }
        int pairs = r.getExpertIdsCount();
        if (r.getRoutingWeightsCount() != pairs) {
            throw error(Status.INVALID_ARGUMENT, r.getRoutingWeightsCount() + " routing_weights for " + pairs + " expert_ids");
        }
        if (r.getPairOffsets(0) != 0 || r.getPairOffsets(n) != pairs) {
            throw error(Status.INVALID_ARGUMENT, "pair_offsets must start at 0 and end at the number of pairs (" + pairs + ")");
        }
        long expectedBytes = (long) n * h * WireTensors.elementBytes(r.getDtype());
        if (r.getHiddenStates().size() != expectedBytes) {
            throw error(Status.INVALID_ARGUMENT, "hidden_states has " + r.getHiddenStates().size() + " bytes, expected "
                    + expectedBytes + " (" + n + " × " + h + " " + r.getDtype() + ")");
        }
        int k = config.moe().topK();
        int ffn = config.moe().numFfnExperts();
        int[] experts = new int[n * k];
        float[] weights = new float[n * k];
        Arrays.fill(experts, -1);
        for (int t = 0; t < n; t++) {
            int from = r.getPairOffsets(t);
            int to = r.getPairOffsets(t + 1);
            if (to < from) throw error(Status.INVALID_ARGUMENT, "pair_offsets decrease at token " + t);
            if (to - from > k) throw error(Status.INVALID_ARGUMENT, "token " + t + " lists " + (to - from) + " experts; the model routes to " + k);
            for (int i = from; i < to; i++) {
                int e = r.getExpertIds(i);
                float w = r.getRoutingWeights(i);
                if (e >= ffn) throw error(Status.INVALID_ARGUMENT, "expert id " + e + " is not a routed FFN expert (the model has " + ffn + ")");
                if (!hosted.hosts(layer, e)) {
                    throw error(Status.FAILED_PRECONDITION, "expert " + e + " of layer " + layer + " is not hosted by this pod (it hosts "
                            + hostsSpec + ")");
                }
                if (!Float.isFinite(w)) throw error(Status.INVALID_ARGUMENT, "routing weight " + w + " of token " + t + " is not finite");
                for (int j = 0; j < i - from; j++) {
                    if (experts[t * k + j] == e) throw error(Status.INVALID_ARGUMENT, "token " + t + " lists expert " + e + " twice");
                }
                experts[t * k + (i - from)] = e;
                weights[t * k + (i - from)] = w;
            }
        }
        float[] x = new float[n * h];
        WireTensors.decode(r.getHiddenStates(), r.getDtype(), x, 0, n * h);
        return new ExpertCall(r, layer, n, x, experts, weights, pairs, out, nowNanos);
    }

    private static StatusRuntimeException error(Status status, String message) {
        return status.withDescription(message).asRuntimeException();
    }
}
