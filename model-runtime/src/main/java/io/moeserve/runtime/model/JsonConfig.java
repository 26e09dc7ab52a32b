package io.moeserve.runtime.model;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;

/** Typed, validating reads of config.json keys; every error names the file and the key. */
final class JsonConfig {
    private final JsonNode root;
    private final String file;

    JsonConfig(JsonNode root, String file) {
        this.root = root;
        this.file = file;
    }

    JsonNode root() {
        return root;
    }

    boolean has(String key) {
        JsonNode n = root.get(key);
        return n != null && !n.isNull();
    }

    JsonNode node(String key) {
        JsonNode n = root.get(key);
        return n == null || n.isNull() ? null : n;
    }

    ConfigException error(String key, String problem) {
        return new ConfigException(file + ": " + key + " " + problem);
    }

    int requiredInt(String key) {
        if (!has(key)) throw error(key, "is required");
        return intValue(key, node(key));
    }

    int intOr(String key, int fallback) {
        return has(key) ? intValue(key, node(key)) : fallback;
    }

    int positiveInt(String key) {
        int v = requiredInt(key);
        if (v <= 0) throw error(key, "must be positive, got " + v);
        return v;
    }

    int positiveIntOr(String key, int fallback) {
        int v = intOr(key, fallback);
        if (v <= 0) throw error(key, "must be positive, got " + v);
        return v;
    }

    double doubleOr(String key, double fallback) {
        if (!has(key)) return fallback;
        JsonNode n = node(key);
        if (!n.isNumber()) throw error(key, "must be a number, got " + n);
        return n.asDouble();
    }

    boolean boolOr(String key, boolean fallback) {
        if (!has(key)) return fallback;
        JsonNode n = node(key);
        if (!n.isBoolean()) throw error(key, "must be true or false, got " + n);
        return n.asBoolean();
    }

    String stringOr(String key, String fallback) {
        if (!has(key)) return fallback;
        JsonNode n = node(key);
        if (!n.isTextual()) throw error(key, "must be a string, got " + n);
        return n.asText();
    }

    /** An int, or a list of ints (eos_token_id), or absent. */
    List<Integer> intList(String key) {
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
