package io.moeserve.runtime.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Quantization;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * What a checkpoint's {@code config.json} says about quantized weights ({@code quantization_config}): which linear
 * layers are stored quantized, and how. Three methods, as checkpoints ship them:
 * <ul>
 *   <li>{@code "fp8"} with {@code weight_block_size [bm, bn]} and {@code fmt "e4m3"}: DeepSeek-V3/R1, Kimi-K2 and
 *       the Qwen3 {@code -FP8} checkpoints. Every linear layer may be FP8, except those in
 *       {@code modules_to_not_convert}; the tensors say which are (a float8_e4m3fn weight with its
 *       {@code weight_scale_inv}).
 *   <li>{@code "compressed-tensors"} (llm-compressor): {@code config_groups} of schemes, each with {@code targets}
 *       and weight arguments (bits, int or float, symmetric, strategy with group size or block), minus
 *       {@code ignore}; stored {@code pack-quantized} (int2/int3/int4/int8 packed in int32), {@code int-quantized} or
 *       {@code naive-quantized} (int8), or {@code float-quantized} (FP8).
 *   <li>{@code "mxfp4"} with {@code modules_to_not_convert}: gpt-oss. transformers converts only the experts
 *       (GptOssExperts, stored as {@code *_blocks} and {@code *_scales}, read with {@link Checkpoint#mxfp4Matrix});
 *       every linear layer stays in float, so {@link #schemeFor} names no scheme. {@link #converts} says whether a
 *       module is converted: not named by {@code modules_to_not_convert} (nor {@code lm_head}, which transformers
 *       adds), whose entries are regular expressions matched at the start of the module name, as transformers'
 *       {@code should_convert_module} matches them ({@code re.match(key)}, which also covers its
 *       {@code re.match(key + "\\.")}), or suffixes of it ({@code name.endswith(key)}, in newer transformers).
 * </ul>
 * Anything else (another method, bit width, strategy or format) is refused when the checkpoint opens, with the
 * setting named: computing with weights read the wrong way would give garbage, not an error.
 *
 * <p>Matching follows compressed-tensors: a target or ignore entry starting with {@code re:} is a regular expression
 * matched at the start of the module name (Python's {@code re.match}); any other entry must equal the module's
 * name, or name its class. Every module this runtime reads through {@link Checkpoint#matrix} is an
 * {@code nn.Linear}, so the class name {@code Linear} matches all of them, and no other class name matches.
 */
public final class QuantizationConfig {

    /** A checkpoint with no quantization_config: every weight is stored in a float dtype. */
    public static final QuantizationConfig NONE = new QuantizationConfig("none", List.of(), List.of());

    private static final String MXFP4 = "mxfp4";

    private static final JsonMapper MAPPER = JsonMapper.builder().build();

    /** How one group of modules is stored. */
    public enum Format {
        /** float8_e4m3fn weight with {@code weight_scale_inv} (the {@code fp8} method). */
        FP8_BLOCK,
        /** int2/int3/int4/int8 codes packed in int32 words: {@code weight_packed}, {@code weight_scale}, {@code weight_shape}. */
        PACK_QUANTIZED,
        /** int8 codes as an I8 {@code weight}, with {@code weight_scale}. */
        INT_QUANTIZED,
        /** float8_e4m3fn codes as the {@code weight}, with {@code weight_scale}. */
        FLOAT_QUANTIZED
    }

    /**
     * One scheme: the storage format, bits per weight, symmetric or with zero points, and the scale block shape
     * ({@code blockRows}/{@code blockCols} of 0 mean "all rows"/"all columns": a channel or whole-tensor scale);
     * {@code int8Activations} when the group declares dynamic symmetric int8 input activations (compressed-tensors'
     * {@code input_activations}), which the runtime honours as {@code Checkpoint.useInt8Activations} does, for
     * these matrices.
     */
    public record Scheme(Format format, int bits, boolean symmetric, int blockRows, int blockCols, String description,
                         boolean int8Activations) {
        /** A weights-only scheme (activations stay float32). */
        public Scheme(Format format, int bits, boolean symmetric, int blockRows, int blockCols, String description) {
            this(format, bits, symmetric, blockRows, blockCols, description, false);
        }

        /** How the codes of this scheme are stored in memory, as the kernels read them. */
        public Quantization.Scheme codes() {
            return switch (format) {
                case FP8_BLOCK, FLOAT_QUANTIZED -> Quantization.Scheme.E4M3;
                case INT_QUANTIZED -> Quantization.Scheme.INT8;
                case PACK_QUANTIZED -> switch (bits) {
                    case 2 -> Quantization.Scheme.PACKED_INT2;
                    case 3 -> Quantization.Scheme.PACKED_INT3;
                    case 4 -> Quantization.Scheme.PACKED_INT4;
                    default -> Quantization.Scheme.PACKED_INT8;
                };
            };
        }
    }

    private record Group(List<String> targets, Scheme scheme, Matcher matcher) {
        Group(List<String> targets, Scheme scheme) {
            this(targets, scheme, new Matcher(targets));
        }
    }

    /** Target or ignore entries, compiled once: exact names in a set, {@code re:} patterns, the class Linear. */
    private static final class Matcher {
        private final java.util.Set<String> names = new java.util.HashSet<>();
        private final List<Pattern> patterns = new ArrayList<>();
        private boolean linear;

        Matcher(List<String> entries) {
            for (String e : entries) {
                if (e.startsWith("re:")) patterns.add(Pattern.compile(e.substring(3)));
                else if (e.equals("Linear")) linear = true;
                else names.add(e);
            }
        }

        boolean matches(String module) {
            if (linear || names.contains(module)) return true;
            for (Pattern p : patterns) if (p.matcher(module).lookingAt()) return true;
            return false;
        }
    }

    private final String method;
    private final List<Group> groups;
    private final List<String> ignore;
    private final Matcher ignoreMatcher;

    private QuantizationConfig(String method, List<Group> groups, List<String> ignore) {
        this(method, groups, ignore, ignore);
    }

    /** {@code ignore} as the config lists it (for messages), {@code ignoreEntries} as target entries that match it. */
    private QuantizationConfig(String method, List<Group> groups, List<String> ignore, List<String> ignoreEntries) {
        this.method = method;
        this.groups = groups;
        this.ignore = ignore;
        this.ignoreMatcher = new Matcher(ignoreEntries);
    }

    /** The quantization of the checkpoint in {@code directory}, from its config.json ({@link #NONE} without one). */
    public static QuantizationConfig read(Path directory) {
        Path file = directory.resolve("config.json");
        if (!Files.isRegularFile(file)) return NONE;
        JsonNode root;
        try {
            root = MAPPER.readTree(file.toFile());
        } catch (IOException e) {
            throw new CheckpointException("cannot read " + file + ": " + e.getMessage(), e);
        }
        JsonNode qc = root == null ? null : root.get("quantization_config");
        if (qc == null || qc.isNull()) return NONE;
        return parse(qc, file + " quantization_config");
    }

    /** Parses a {@code quantization_config} object; {@code where} names it in errors. */
    public static QuantizationConfig parse(JsonNode qc, String where) {
        if (!qc.isObject()) throw new CheckpointException(where + " must be an object, found " + qc);
        String method = text(qc, "quant_method", where);
        if (method == null) throw new CheckpointException(where + " has no quant_method");
        return switch (method) {
            case "fp8" -> parseFp8(qc, where);
            case "compressed-tensors" -> parseCompressedTensors(qc, where);
            case MXFP4 -> parseMxfp4(qc, where);
            default -> throw new CheckpointException(where + ": quant_method \"" + method + "\" is not supported"
                    + " (supported: fp8, compressed-tensors, mxfp4)");
        };
    }

    private static QuantizationConfig parseFp8(JsonNode qc, String where) {
        String fmt = text(qc, "fmt", where);
        if (fmt != null && !fmt.equals("e4m3")) {
            throw new CheckpointException(where + ": fp8 fmt \"" + fmt + "\" is not supported (supported: e4m3)");
        }
        int bm = 128, bn = 128;
        JsonNode block = qc.get("weight_block_size");
        if (block != null && !block.isNull()) {
            if (!block.isArray() || block.size() != 2 || !block.get(0).canConvertToInt() || !block.get(1).canConvertToInt()
                    || block.get(0).asInt() < 1 || block.get(1).asInt() < 1) {
                throw new CheckpointException(where + ": weight_block_size must be two positive integers, found " + block);
            }
            bm = block.get(0).asInt();
            bn = block.get(1).asInt();
        }
        Scheme scheme = new Scheme(Format.FP8_BLOCK, 8, true, bm, bn, "fp8 e4m3, blocks of " + bm + "x" + bn);
        List<String> ignore = new ArrayList<>();
        // transformers adds lm_head to the modules it never converts; DeepSeek-V3 keeps it in BF16 too.
        ignore.add("lm_head");
        // transformers matches these as prefixes of module names.
        for (String m : strings(qc, "modules_to_not_convert", where)) ignore.add("re:" + Pattern.quote(m) + "(\\..*)?$");
        return new QuantizationConfig("fp8", List.of(new Group(List.of("Linear"), scheme)), List.copyOf(ignore));
    }

    private static QuantizationConfig parseMxfp4(JsonNode qc, String where) {
        List<String> ignore = new ArrayList<>();
        ignore.add("lm_head");
        for (String m : strings(qc, "modules_to_not_convert", where)) if (!ignore.contains(m)) ignore.add(m);
        List<String> entries = new ArrayList<>();
        for (String m : ignore) {
            // re.match(m): a regular expression at the start of the name; name.endswith(m): a literal suffix.
            entries.add("re:" + m);
            entries.add("re:.*" + Pattern.quote(m) + "$");
        }
        checkPatterns(entries, where + ".modules_to_not_convert");
        return new QuantizationConfig(MXFP4, List.of(), List.copyOf(ignore), List.copyOf(entries));
    }

    private static QuantizationConfig parseCompressedTensors(JsonNode qc, String where) {
        String status = text(qc, "quantization_status", where);
        if (status != null && !status.equals("compressed")) {
            throw new CheckpointException(where + ": quantization_status \"" + status + "\" is not supported (only"
                    + " \"compressed\" checkpoints, as llm-compressor saves them)");
        }
        String globalFormat = text(qc, "format", where);
        JsonNode groupsNode = qc.get("config_groups");
        if (groupsNode == null || !groupsNode.isObject() || groupsNode.isEmpty()) {
            throw new CheckpointException(where + " has no config_groups");
        }
        List<Group> groups = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = groupsNode.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String at = where + ".config_groups." + e.getKey();
            JsonNode g = e.getValue();
            List<String> targets = strings(g, "targets", at);
            checkPatterns(targets, at + ".targets");
            JsonNode weights = g.get("weights");
            if (weights == null || weights.isNull()) continue; // activation-only group: weights stay in float
            String format = text(g, "format", at);
            if (format == null) format = globalFormat;
            Scheme scheme = ctScheme(weights, format, at);
            if (int8Activations(g.get("input_activations"), at + ".input_activations")) {
                scheme = new Scheme(scheme.format(), scheme.bits(), scheme.symmetric(), scheme.blockRows(), scheme.blockCols(),
                        scheme.description() + ", int8 activations", true);
            }
            groups.add(new Group(targets, scheme));
        }
        List<String> ignore = strings(qc, "ignore", where);
        checkPatterns(ignore, where + ".ignore");
        return new QuantizationConfig("compressed-tensors", List.copyOf(groups), ignore);
    }

    /**
     * Whether a group's {@code input_activations} asks for what {@code PanelKernel} computes: int, 8 bits, symmetric,
     * dynamic (each token's scales computed when it is multiplied; ours per block of 32 columns, as llama.cpp's
     * Q8_0, whatever strategy the group names). Float activations (FP8 W8A8) and static int8 ones (calibrated
     * {@code input_scale}) are not applied: activations stay float32, the weights-only path these checkpoints have
     * always taken here. Other integer activations are refused, naming the group.
     */
    private static boolean int8Activations(JsonNode a, String at) {
        if (a == null || a.isNull()) return false;
        String type = a.has("type") ? a.get("type").asText() : "int";
        if (!type.equals("int")) return false;
        int bits = a.has("num_bits") ? a.get("num_bits").asInt() : 8;
        boolean symmetric = !a.has("symmetric") || a.get("symmetric").asBoolean();
        if (bits != 8 || !symmetric) {
            throw new CheckpointException(at + ": int" + bits + (symmetric ? "" : " asymmetric") + " activations are not supported"
                    + " (supported: int8, symmetric, dynamic, computed per block of 32 columns as llama.cpp's Q8_0; or float)");
        }
        return a.has("dynamic") && a.get("dynamic").asBoolean();
    }

    private static Scheme ctScheme(JsonNode w, String format, String where) {
        String at = where + ".weights";
        int bits = w.has("num_bits") ? w.get("num_bits").asInt() : 8;
        String type = w.has("type") ? w.get("type").asText() : "int";
        boolean symmetric = !w.has("symmetric") || w.get("symmetric").asBoolean();
        Integer groupSize = w.hasNonNull("group_size") ? w.get("group_size").asInt() : null;
        String strategy = w.hasNonNull("strategy") ? w.get("strategy").asText()
                : groupSize == null ? "tensor" : groupSize == -1 ? "channel" : "group";
        if (w.hasNonNull("actorder") && !w.get("actorder").asText().equals("weight")) {
            // "group" stores a column permutation (weight_g_idx) that these kernels do not apply.
            throw new CheckpointException(at + ": actorder \"" + w.get("actorder").asText() + "\" is not supported"
                    + " (its weight_g_idx reorders columns; supported: none, weight)");
        }
        int blockRows, blockCols;
        switch (strategy) {
            case "tensor" -> { blockRows = 0; blockCols = 0; }
            case "channel" -> { blockRows = 1; blockCols = 0; }
            case "group" -> {
                if (groupSize == null || groupSize < 1) {
                    throw new CheckpointException(at + ": strategy group needs a positive group_size, found " + groupSize);
                }
                blockRows = 1;
                blockCols = groupSize;
            }
            case "block" -> {
                JsonNode b = w.get("block_structure");
                if (b == null || !b.isArray() || b.size() != 2 || b.get(0).asInt() < 1 || b.get(1).asInt() < 1) {
                    throw new CheckpointException(at + ": strategy block needs block_structure [rows, cols], found " + b);
                }
                blockRows = b.get(0).asInt();
                blockCols = b.get(1).asInt();
            }
            default -> throw new CheckpointException(at + ": strategy \"" + strategy + "\" is not supported"
                    + " (supported: tensor, channel, group, block)");
        }
        if (format == null) {
            throw new CheckpointException(where + " has no format (neither its own nor the config's)");
        }
        Format f = switch (format) {
            case "pack-quantized" -> {
                if (!type.equals("int") || (bits != 2 && bits != 3 && bits != 4 && bits != 8)) {
                    throw new CheckpointException(at + ": pack-quantized " + type + " with num_bits " + bits
                            + " is not supported (supported: int with 2, 3, 4 or 8 bits)");
                }
                yield Format.PACK_QUANTIZED;
            }
            case "int-quantized", "naive-quantized" -> {
                if (type.equals("float")) yield floatQuantized(bits, symmetric, at);
                if (!type.equals("int") || bits != 8) {
                    throw new CheckpointException(at + ": " + format + " " + type + " with num_bits " + bits
                            + " is not supported (supported: int with 8 bits, float with 8 bits)");
                }
                yield Format.INT_QUANTIZED;
            }
            case "float-quantized" -> floatQuantized(bits, symmetric, at);
            default -> throw new CheckpointException(where + ": format \"" + format + "\" is not supported"
                    + " (supported: pack-quantized, int-quantized, naive-quantized, float-quantized)");
        };
        String shape = blockRows == 0 ? "per tensor" : blockCols == 0 ? "per channel"
                : blockRows == 1 ? "groups of " + blockCols : "blocks of " + blockRows + "x" + blockCols;
        String description = format + " " + (type.equals("float") ? "fp8 e4m3" : "int" + bits)
                + (symmetric ? "" : " asymmetric") + ", " + shape;
        return new Scheme(f, bits, symmetric, blockRows, blockCols, description);
    }

    private static Format floatQuantized(int bits, boolean symmetric, String at) {
        if (bits != 8) throw new CheckpointException(at + ": float weights of " + bits + " bits are not supported (supported: 8, e4m3)");
        if (!symmetric) throw new CheckpointException(at + ": asymmetric float weights are not supported");
        return Format.FLOAT_QUANTIZED;
    }

    /** The scheme module {@code module} (a tensor name without {@code .weight}) is stored in, or null if float. */
    public Scheme schemeFor(String module) {
        if (groups.isEmpty() || ignoreMatcher.matches(module)) return null;
        for (Group g : groups) if (g.matcher().matches(module)) return g.scheme();
        return null;
    }

    /**
     * Whether module {@code module} (a name without {@code .weight}) is stored quantized per this config: targeted by
     * a scheme and not ignored (fp8, compressed-tensors), or, for mxfp4, not named by {@code modules_to_not_convert}
     * (transformers' {@code should_convert_module}; mxfp4 converts only gpt-oss's experts, read with
     * {@link Checkpoint#mxfp4Matrix}, so for its linear layers this says only that they were not excluded).
     */
    public boolean converts(String module) {
        if (isMxfp4()) return !ignoreMatcher.matches(module);
        return schemeFor(module) != null;
    }

    /** Whether the method is mxfp4 (gpt-oss): experts in MXFP4 blocks and scales, everything else in float. */
    public boolean isMxfp4() {
        return method.equals(MXFP4);
    }

    /** Whether the config lists {@code module} among the modules it leaves in float. */
    public boolean ignores(String module) {
        return ignoreMatcher.matches(module);
    }

    /**
     * Bytes a linear layer's weight takes as this config stores it: codes, scales and zero points for a quantized
     * one, {@code rows × cols × floatBytes} for one left in float (whose dtype also sizes compressed-tensors' scales).
     * For mxfp4, every module it {@link #converts} is taken for an expert's projection in MXFP4.
     */
    public long storedBytes(String module, int rows, int cols, int floatBytes) {
        if (isMxfp4() && converts(module)) {
            // gpt-oss's experts: one byte per two codes, one E8M0 byte per 32 columns.
            return rows * Quantization.Scheme.MXFP4.rowBytes(cols) + (long) rows * (cols / Quantization.Scheme.MX_BLOCK);
        }
        Scheme s = schemeFor(module);
        if (s == null) return (long) rows * cols * floatBytes;
        DType scaleType = s.format() == Format.FP8_BLOCK || floatBytes == 4 ? DType.F32 : DType.BF16;
        Quantization shape = new Quantization(s.codes(), MemorySegment.NULL, scaleType,
                s.blockRows() == 0 ? rows : s.blockRows(), s.blockCols() == 0 ? cols : s.blockCols(),
                s.symmetric() ? null : MemorySegment.NULL);
        return rows * s.codes().rowBytes(cols) + shape.scaleBytes(rows, cols) + shape.zeroPointBytes(rows, cols);
    }

    /** Whether the checkpoint has any quantized weights per its config. */
    public boolean isQuantized() {
        return !groups.isEmpty() || isMxfp4();
    }

    /** One line for humans: the method and each group's scheme. */
    public String describe() {
        if (isMxfp4()) {
            return "mxfp4: experts in e2m1 with an e8m0 scale per 32 columns; not converting " + String.join(", ", ignore);
        }
        if (groups.isEmpty()) return "none";
        List<String> parts = new ArrayList<>();
        for (Group g : groups) {
            List<String> t = g.targets();
            parts.add(g.scheme().description() + " for " + (t.size() <= 4 ? String.join(", ", t) : t.size() + " targets"));
        }
        return method + ": " + String.join("; ", parts) + (ignore.isEmpty() ? "" : "; ignoring " + String.join(", ", ignore));
    }

    private static void checkPatterns(List<String> patterns, String where) {
        for (String p : patterns) {
            if (!p.startsWith("re:")) continue;
            try {
                Pattern.compile(p.substring(3));
            } catch (PatternSyntaxException e) {
                throw new CheckpointException(where + ": invalid regular expression " + p + ": " + e.getDescription());
            }
        }
    }

    private static String text(JsonNode node, String field, String where) {
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) return null;
        if (!v.isTextual()) throw new CheckpointException(where + "." + field + " must be a string, found " + v);
        return v.asText();
    }

    private static List<String> strings(JsonNode node, String field, String where) {
        JsonNode v = node.get(field);
        if (v == null || v.isNull()) return List.of();
        if (!v.isArray()) throw new CheckpointException(where + "." + field + " must be a list of strings, found " + v);
        List<String> out = new ArrayList<>();
        for (JsonNode e : v) {
            if (!e.isTextual()) throw new CheckpointException(where + "." + field + " must hold strings, found " + e);
            out.add(e.asText());
        }
        return List.copyOf(out);
    }
}
