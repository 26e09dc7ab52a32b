package io.moeserve.runtime.checkpoint;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * The {@code model.safetensors.index.json} of a sharded checkpoint: which shard file holds each tensor.
 *
 * <p>Written byte for byte as transformers writes it ({@code json.dumps(index, indent=2, sort_keys=True) + "\n"}
 * with Python's default ASCII escaping), so that a checkpoint written here diffs cleanly against one saved by
 * {@code save_pretrained}.
 */
final class SafetensorsIndex {

    static final String FILE_NAME = "model.safetensors.index.json";

    private static final JsonMapper MAPPER = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .build();

    private SafetensorsIndex() {}

    /** Reads the {@code weight_map} (tensor name to shard file name), in file order. */
    static Map<String, String> readWeightMap(Path indexFile) {
        JsonNode root;
        try {
            root = MAPPER.readTree(Files.readAllBytes(indexFile));
        } catch (NoSuchFileException e) {
            throw new CheckpointException(indexFile + " does not exist", e);
        } catch (JacksonException e) {
            throw new CheckpointException(indexFile + " is not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new CheckpointException("cannot read " + indexFile + ": " + e, e);
        }
        JsonNode weightMap = root == null ? null : root.get("weight_map");
        if (weightMap == null || !weightMap.isObject()) {
            throw new CheckpointException(indexFile + " has no \"weight_map\" object");
        }
        Map<String, String> result = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : weightMap.properties()) {
            if (!e.getValue().isTextual() || e.getValue().textValue().isEmpty()) {
                throw new CheckpointException(indexFile + ": weight_map entry for tensor " + e.getKey()
                        + " must be a shard file name, found " + e.getValue());
            }
            result.put(e.getKey(), e.getValue().textValue());
        }
        if (result.isEmpty()) throw new CheckpointException(indexFile + " has an empty weight_map");
        return result;
    }

    /** Writes the index for shards holding {@code totalSize} bytes of tensor data. */
    static void write(Path indexFile, long totalSize, Map<String, String> weightMap) {
        StringBuilder json = new StringBuilder();
        json.append("{\n  \"metadata\": {\n    \"total_size\": ").append(totalSize).append("\n  },\n");
        json.append("  \"weight_map\": {");
        String separator = "\n";
        for (Map.Entry<String, String> e : new TreeMap<>(weightMap).entrySet()) {
            json.append(separator).append("    ");
            appendPythonString(json, e.getKey());
            json.append(": ");
            appendPythonString(json, e.getValue());
            separator = ",\n";
        }
        // Python prints an empty dict as "{}" even when indenting.
        json.append(weightMap.isEmpty() ? "}\n}\n" : "\n  }\n}\n");
        try {
            Files.writeString(indexFile, json, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new CheckpointException("cannot write " + indexFile + ": " + e, e);
        }
    }

    /** A JSON string literal as Python's json module writes it with ensure_ascii=True. */
    private static void appendPythonString(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    // Java chars are UTF-16 code units, exactly what Python's \\u escapes (surrogate pairs) spell.
                    if (c < 0x20 || c > 0x7e) out.append(String.format("\\u%04x", (int) c));
                    else out.append(c);
                }
            }
        }
        out.append('"');
    }
}
