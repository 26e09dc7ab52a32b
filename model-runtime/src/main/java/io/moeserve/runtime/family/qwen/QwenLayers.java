package io.moeserve.runtime.family.qwen;

import com.fasterxml.jackson.databind.JsonNode;
import io.moeserve.runtime.config.ConfigReader;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;

/** The per-layer keys Qwen2-MoE and Qwen3-MoE share: which layers are MoE, and which slide. */
final class QwenLayers {
    private QwenLayers() {}

    /** Every {@code decoder_sparse_step}-th layer is MoE unless {@code mlp_only_layers} lists it. */
    static boolean[] sparse(ConfigReader c, int layers) {
        boolean[] sparse = new boolean[layers];
        int step = c.positiveIntOr("decoder_sparse_step", 1);
        Set<Integer> mlpOnly = new HashSet<>();
        JsonNode list = c.node("mlp_only_layers");
        if (list != null) {
            if (!list.isArray()) throw c.error("mlp_only_layers", "must be a list of layer indices");
            for (JsonNode x : list) {
                if (!x.isIntegralNumber() || x.asInt() < 0 || x.asInt() >= layers) {
                    throw c.error("mlp_only_layers", "holds " + x + ", not a layer index below " + layers);
                }
                mlpOnly.add(x.asInt());
            }
        }
        for (int i = 0; i < layers; i++) sparse[i] = !mlpOnly.contains(i) && (i + 1) % step == 0;
        return sparse;
    }

    /**
     * Sliding windows when {@code use_sliding_window}: per {@code layer_types} if given, else from
     * {@code max_window_layers} on (Qwen2-MoE) or on every layer (Qwen3-MoE, which has no max_window_layers).
     */
    static int[] slidingWindows(ConfigReader c, int layers, boolean maxWindowLayers) {
        int[] window = new int[layers];
        if (!c.boolOr("use_sliding_window", false)) return window;
        int w = c.positiveInt("sliding_window");
        int[] byType = c.slidingWindowsByLayerType(layers, w);
        if (byType != null) {
            return byType;
        } else if (!maxWindowLayers) {
            Arrays.fill(window, w);
        } else {
            for (int i = c.intOr("max_window_layers", layers); i < layers; i++) window[i] = w;
        }
        return window;
    }
}
