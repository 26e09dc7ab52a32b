package io.moeserve.runtime.checkpoint;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.moeserve.runtime.tensor.DType;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * The parsed and fully validated JSON header of one safetensors file.
 *
 * <p>Everything that can be wrong with a header is caught here, before a single tensor is handed out, so that a
 * bad shard fails at load time with its file and tensor named rather than as a garbage matmul or a fault deep
 * in a kernel. The checks follow the reference implementation (the Rust {@code safetensors} crate) with one
 * leniency: gaps between tensors are allowed, only overlaps are rejected, since a gap is harmless to a reader.
 *
 * @param metadata  the optional {@code __metadata__} map, in header order (empty when absent)
 * @param tensors   the tensor entries, in header order
 */
record SafetensorsHeader(Map<String, String> metadata, List<TensorEntry> tensors) {

    static final String METADATA_KEY = "__metadata__";

    /** Every dtype the safetensors format defines, so that an unsupported one can be told from a typo. */
    private static final Set<String> SAFETENSORS_DTYPES = Set.of(
            "BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "I64",
            "F4", "F6_E2M3", "F6_E3M2", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
            "F16", "BF16", "F32", "F64", "C64");

    private static final String SUPPORTED = Arrays.stream(DType.values())
            .map(DType::safetensorsName).collect(Collectors.joining(", "));

    /** Duplicate keys would silently shadow a tensor; trailing bytes other than padding mean a corrupt header. */
    private static final JsonMapper MAPPER = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

    /**
     * Parses {@code json} (the header bytes of {@code file}, padding included) and checks every entry against a
     * data region of {@code dataSize} bytes.
     */
    static SafetensorsHeader parse(Path file, byte[] json, long dataSize) {
        JsonNode root;
        try {
            root = MAPPER.readTree(json);
        } catch (JacksonException e) {
            throw new CheckpointException(file + " has a malformed safetensors header (invalid JSON: "
                    + e.getOriginalMessage() + ")", e);
        } catch (java.io.IOException e) {
            throw new CheckpointException("cannot parse the header of " + file + ": " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new CheckpointException(file + " has a malformed safetensors header: not a JSON object");
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        List<TensorEntry> tensors = new ArrayList<>();
        for (Map.Entry<String, JsonNode> field : root.properties()) {
            if (field.getKey().equals(METADATA_KEY)) {
                readMetadata(file, field.getValue(), metadata);
            } else {
                tensors.add(readEntry(file, field.getKey(), field.getValue(), dataSize));
            }
        }
        rejectOverlaps(file, tensors);
        return new SafetensorsHeader(Collections.unmodifiableMap(metadata), List.copyOf(tensors));
    }

    private static void readMetadata(Path file, JsonNode node, Map<String, String> into) {
        if (node.isNull()) return; // the reference writer emits null for "no metadata"
        if (!node.isObject()) {
            throw new CheckpointException(file + ": " + METADATA_KEY + " must be a JSON object of strings, found "
                    + node.getNodeType());
        }
        for (Map.Entry<String, JsonNode> e : node.properties()) {
            if (!e.getValue().isTextual()) {
                throw new CheckpointException(file + ": " + METADATA_KEY + " value for key \"" + e.getKey()
                        + "\" must be a string, found " + e.getValue());
            }
            into.put(e.getKey(), e.getValue().textValue());
        }
    }

    private static TensorEntry readEntry(Path file, String name, JsonNode node, long dataSize) {
        String where = "tensor " + name + " in " + file;
        if (!node.isObject()) {
            throw new CheckpointException(where + ": header entry must be a JSON object, found " + node);
        }
        DType dtype = readDType(where, required(where, node, "dtype"));
        long[] shape = readLongs(where, required(where, node, "shape"), "shape");
        long[] offsets = readLongs(where, required(where, node, "data_offsets"), "data_offsets");
        if (offsets.length != 2) {
            throw new CheckpointException(where + ": \"data_offsets\" must be [begin, end], found "
                    + Arrays.toString(offsets));
        }
        long begin = offsets[0];
        long end = offsets[1];
        if (end < begin) {
            throw new CheckpointException(where + " has data_offsets [" + begin + ", " + end
                    + "] whose end lies before its begin");
        }
        long expectedBytes = byteSize(where, dtype, shape);
        if (expectedBytes != end - begin) {
            throw new CheckpointException(where + " has shape " + Arrays.toString(shape) + " of " + dtype + " ("
                    + expectedBytes + " bytes) but data_offsets [" + begin + ", " + end + "] span "
                    + (end - begin) + " bytes");
        }
        if (end > dataSize) {
            throw new CheckpointException(file + " is truncated: tensor " + name + " needs bytes up to " + end
                    + " of the data region but the file holds only " + dataSize);
        }
        return new TensorEntry(name, dtype, shape, begin, end);
    }

    private static JsonNode required(String where, JsonNode entry, String field) {
        JsonNode value = entry.get(field);
        if (value == null || value.isNull()) {
            throw new CheckpointException(where + ": header entry lacks \"" + field + "\"");
        }
        return value;
    }

    private static DType readDType(String where, JsonNode node) {
        if (!node.isTextual()) {
            throw new CheckpointException(where + ": \"dtype\" must be a string, found " + node);
        }
        String name = node.textValue();
        DType dtype = DType.fromSafetensors(name);
        // fromSafetensors ignores case, the format does not: "bf16" is not a safetensors dtype.
        if (dtype != null && dtype.safetensorsName().equals(name)) return dtype;
        if (SAFETENSORS_DTYPES.contains(name)) {
            throw new CheckpointException(where + " has dtype " + name
                    + ", which this runtime does not support (supported: " + SUPPORTED + ")");
        }
        throw new CheckpointException(where + " has unknown dtype \"" + name
                + "\" (not a safetensors dtype; supported: " + SUPPORTED + ")");
    }

    private static long[] readLongs(String where, JsonNode node, String field) {
        if (!node.isArray()) {
            throw new CheckpointException(where + ": \"" + field + "\" must be an array of non-negative integers, "
                    + "found " + node);
        }
        long[] values = new long[node.size()];
        for (int i = 0; i < values.length; i++) {
            JsonNode v = node.get(i);
            if (!v.isIntegralNumber() || !v.canConvertToLong() || v.longValue() < 0) {
                throw new CheckpointException(where + ": \"" + field
                        + "\" must hold non-negative integers, found " + node);
            }
            values[i] = v.longValue();
        }
        return values;
    }

    private static long byteSize(String where, DType dtype, long[] shape) {
        try {
            long n = dtype.byteSize();
            for (long d : shape) n = Math.multiplyExact(n, d);
            return n;
        } catch (ArithmeticException e) {
            throw new CheckpointException(where + " has shape " + Arrays.toString(shape)
                    + ", too large to address", e);
        }
    }

    private static void rejectOverlaps(Path file, List<TensorEntry> tensors) {
        // Empty tensors occupy no bytes, so they may share an offset with anything.
        List<TensorEntry> byBegin = tensors.stream()
                .filter(t -> t.byteSize() > 0)
                .sorted(Comparator.comparingLong(TensorEntry::begin))
                .toList();
        for (int i = 1; i < byBegin.size(); i++) {
            TensorEntry prev = byBegin.get(i - 1);
            TensorEntry next = byBegin.get(i);
            if (next.begin() < prev.end()) {
                throw new CheckpointException("tensors " + prev.name() + " and " + next.name() + " in " + file
                        + " overlap: " + prev.name() + " has data_offsets [" + prev.begin() + ", " + prev.end()
                        + "], " + next.name() + " has [" + next.begin() + ", " + next.end() + "]");
            }
        }
    }
}
