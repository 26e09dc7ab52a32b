package io.moeserve.runtime.config;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;

/**
 * Typed, validating reads of one config.json's keys; every error names the file and the key. Model families read
 * their own keys through it ({@code ModelFamily}).
 */
public final class ConfigReader {
    private final JsonNode root;
    private final String file;

    ConfigReader(JsonNode root, String file) {
        this.root = root;
        this.file = file;
    }

    public boolean has(String key) {
        JsonNode n = root.get(key);
        return n != null && !n.isNull();
    }

    public JsonNode node(String key) {
        JsonNode n = root.get(key);
        return n == null || n.isNull() ? null : n;
    }

    public ConfigException error(String key, String problem) {
        return new ConfigException(file + ": " + key + " " + problem);
    }

    public int requiredInt(String key) {
        if (!has(key)) throw error(key, "is required");
        return intValue(key, node(key));
    }

    public int intOr(String key, int fallback) {
        return has(key) ? intValue(key, node(key)) : fallback;
    }

    public int positiveInt(String key) {
        int v = requiredInt(key);
        if (v <= 0) throw error(key, "must be positive, got " + v);
        return v;
    }

    public int positiveIntOr(String key, int fallback) {
        int v = intOr(key, fallback);
        if (v <= 0) throw error(key, "must be positive, got " + v);
        return v;
    }

    /** Experts per token: positive and at most the number of experts. */
    public int topK(String key, int fallback, int experts) {
        int k = positiveIntOr(key, fallback);
        if (k > experts) throw error(key, "is " + k + " but there are only " + experts + " experts");
        return k;
    }

    public double doubleOr(String key, double fallback) {
        if (!has(key)) return fallback;
        JsonNode n = node(key);
        if (!n.isNumber()) throw error(key, "must be a number, got " + n);
        return n.asDouble();
    }

    public boolean boolOr(String key, boolean fallback) {
        if (!has(key)) return fallback;
        JsonNode n = node(key);
        if (!n.isBoolean()) throw error(key, "must be true or false, got " + n);
        return n.asBoolean();
    }

    public String stringOr(String key, String fallback) {
        if (!has(key)) return fallback;
        JsonNode n = node(key);
        if (!n.isTextual()) throw error(key, "must be a string, got " + n);
        return n.asText();
    }

    /**
     * transformers' {@code layer_types}: per layer, {@code window} for "sliding_attention" and 0 for
     * "full_attention"; null when the config has no such key.
     */
    public int[] slidingWindowsByLayerType(int layers, int window) {
        JsonNode types = node("layer_types");
        if (types == null) return null;
        if (!types.isArray() || types.size() != layers) throw error("layer_types", "must list one type per layer");
        int[] windows = new int[layers];
        for (int i = 0; i < layers; i++) {
            String t = types.get(i).asText();
            if (t.equals("sliding_attention")) windows[i] = window;
            else if (!t.equals("full_attention")) throw error("layer_types", "holds unknown type " + t);
        }
        return windows;
    }

    /** An int, or a list of ints (eos_token_id), or absent. */
    public List<Integer> intList(String key) {
        List<Integer> out = new ArrayList<>();
        if (!has(key)) return out;
        JsonNode n = node(key);
        if (n.isArray()) {
            for (JsonNode e : n) out.add(intValue(key, e));
        } else {
            out.add(intValue(key, n));
        }
        return out;
    }

    private int intValue(String key, JsonNode n) {
        if (!n.isIntegralNumber() && !(n.isNumber() && n.asDouble() == Math.rint(n.asDouble()))) {
            throw error(key, "must be an integer, got " + n);
        }
        long v = n.asLong();
        if (v > Integer.MAX_VALUE || v < Integer.MIN_VALUE) throw error(key, "is out of range: " + n);
        return (int) v;
    }
}
