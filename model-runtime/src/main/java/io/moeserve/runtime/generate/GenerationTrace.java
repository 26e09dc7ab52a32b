package io.moeserve.runtime.generate;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.RoutingObserver;
import io.moeserve.runtime.model.StepBatch;
import java.util.List;

/**
 * One prompt's generation with everything a reference implementation can be compared on: the generated ids, the
 * raw logits at the last prompt position, and the gates' choices at every prompt position of every MoE layer.
 * Its JSON form ({@code moe-serve.generation.v2}) is what {@code moe generate --json} prints and what
 * tools/reference/compare.py reads.
 *
 * @param experts  [moe layer][prompt position][k] chosen experts, descending selection score
 * @param weights  [moe layer][prompt position][k] combine weights
 * @param moeLayers layer index of each MoE layer in the arrays above
 */
public record GenerationTrace(String architecture, int[] promptTokens, GenerationResult result, float[] lastPromptLogits,
                              int[] moeLayers, int[][][] experts, float[][][] weights) {

    public static GenerationTrace run(MoeModel model, GenerationRequest request) {
        int[] prompt = request.promptTokens();
        var config = model.config();
        int layers = config.numLayers();
        int k = config.moe().topK();
        int[] moeIndex = new int[layers];
        int[] moeLayers = new int[config.numSparseLayers()];
        int count = 0;
        for (int l = 0; l < layers; l++) {
            moeIndex[l] = config.isSparse(l) ? count : -1;
            if (config.isSparse(l)) moeLayers[count++] = l;
        }
        int[][][] experts = new int[count][prompt.length][k];
        float[][][] weights = new float[count][prompt.length][k];
        RoutingObserver capture = (layer, batch, kk, e, w) -> captureRows(batch, kk, e, w, moeIndex[layer], prompt.length, experts, weights);
        KvCache cache = model.newKvCache(prompt.length + request.maxNewTokens() + 16, 1);
        float[][] logits = new float[1][];
        GenerationResult result = new Generator(model, cache)
                .generate(List.of(request), TokenListener.NONE, capture, logits).getFirst();
        return new GenerationTrace(config.architecture().hfClassName(), prompt, result, logits[0], moeLayers, experts, weights);
    }

    private static void captureRows(StepBatch batch, int k, int[] e, float[] w, int moe, int promptLength,
                                    int[][][] experts, float[][][] weights) {
        for (int t = 0; t < batch.size(); t++) {
            int pos = batch.position(t);
            if (pos >= promptLength) continue; // prompt positions only
            for (int j = 0; j < k; j++) {
                experts[moe][pos][j] = e[t * k + j];
                weights[moe][pos][j] = w[t * k + j];
            }
        }
    }

    public ObjectNode toJson(ObjectMapper json) {
        ObjectNode root = json.createObjectNode();
        root.put("format", "moe-serve.generation.v2");
        root.put("architecture", architecture);
        ArrayNode p = root.putArray("prompt_token_ids");
        for (int t : promptTokens) p.add(t);
        ArrayNode g = root.putArray("generated_token_ids");
        for (int t : result.outputTokens()) g.add(t);
        root.put("finish_reason", result.finishReason().name().toLowerCase());
        ArrayNode l = root.putArray("last_prompt_logits");
        for (float x : lastPromptLogits) l.add(x);
        ArrayNode gate = root.putArray("gate");
        for (int m = 0; m < moeLayers.length; m++) {
            ObjectNode layer = gate.addObject();
            layer.put("layer", moeLayers[m]);
            ArrayNode ex = layer.putArray("experts");
            ArrayNode we = layer.putArray("weights");
            for (int pos = 0; pos < promptTokens.length; pos++) {
                ArrayNode er = ex.addArray();
                ArrayNode wr = we.addArray();
                for (int j = 0; j < experts[m][pos].length; j++) {
                    er.add(experts[m][pos][j]);
                    wr.add(weights[m][pos][j]);
                }
            }
        }
        return root;
    }
}
