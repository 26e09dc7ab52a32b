package io.moeserve.runtime.quantize;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.checkpoint.CheckpointException;
import io.moeserve.runtime.checkpoint.ShardedCheckpointWriter;
import io.moeserve.runtime.checkpoint.TensorSpec;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.family.ExpectedTensor;
import io.moeserve.runtime.family.ExpertProjections;
import io.moeserve.runtime.family.ModelFamily;
import io.moeserve.runtime.family.TensorLayout;
import io.moeserve.runtime.family.TensorRole;
import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Tensor;
import io.moeserve.runtime.tensor.TensorAccess;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Writes a quantized copy of a float checkpoint ({@code moe quantize}): routed experts and, optionally, the other
 * linear layers (attention, dense and shared-expert MLPs) as int4, int8 or FP8; everything else (embeddings, norms,
 * gates, the lm head) byte for byte. The copy is a compressed-tensors checkpoint (pack-quantized int4/int8 in groups
 * of columns, float-quantized FP8 in 128×128 blocks), which this runtime, vLLM and transformers read; or, when only
 * FP8 is asked for, DeepSeek-V3's {@code fp8} layout ({@code weight_scale_inv}). config.json gains the
 * quantization_config; the tokenizer, chat template and generation config are copied as they are.
 *
 * <p>Which tensors are which comes from the model family's tensor layout, not from name guesses: the routed experts
 * are the family's expert projections; the other linear layers are the layout's linear weights whose module name ends
 * in a projection ({@code q_proj}, {@code kv_a_proj_with_mqa}, {@code gate_proj}, ...), which leaves out gates.
 */
public final class CheckpointQuantizer {

    private static final JsonMapper MAPPER = JsonMapper.builder().enable(SerializationFeature.INDENT_OUTPUT).build();
    private static final long SHARD_BYTES = 4L << 30;
    private static final int FP8_BLOCK = WeightQuantizer.FP8_BLOCK;

    /**
     * What to quantize, and how. {@code expertFormats}, when not null, gives each routed expert tensor its own
     * packed integer width (mixed precision, {@link MixedPrecision}); {@code experts} is then ignored.
     */
    public record Options(TargetFormat experts, TargetFormat dense, TargetFormat lmHead, int groupSize, boolean fp8Layout,
                          Map<String, TargetFormat> expertFormats) {
        /** Options with one format for all routed experts. */
        public Options(TargetFormat experts, TargetFormat dense, TargetFormat lmHead, int groupSize, boolean fp8Layout) {
            this(experts, dense, lmHead, groupSize, fp8Layout, null);
        }

        /** Options that keep the lm head in its float dtype. */
        public Options(TargetFormat experts, TargetFormat dense, int groupSize, boolean fp8Layout) {
            this(experts, dense, TargetFormat.KEEP, groupSize, fp8Layout);
        }

        /** Mixed-precision experts: each expert tensor in the packed integer format {@code expertFormats} names. */
        public static Options mixed(Map<String, TargetFormat> expertFormats, TargetFormat dense, TargetFormat lmHead, int groupSize) {
            return new Options(TargetFormat.INT4, dense, lmHead, groupSize, false, Map.copyOf(expertFormats));
        }

        public Options {
            if (groupSize < 1) throw new IllegalArgumentException("group size must be positive, got " + groupSize);
            if (expertFormats != null) {
                for (TargetFormat f : expertFormats.values()) {
                    if (f != TargetFormat.INT2 && f != TargetFormat.INT3 && f != TargetFormat.INT4 && f != TargetFormat.INT8) {
                        throw new IllegalArgumentException("mixed-precision experts are int2, int3, int4 or int8, not " + f);
                    }
                }
                if (fp8Layout) throw new IllegalArgumentException("mixed-precision experts are written as compressed-tensors");
            }
            if (fp8Layout && ((experts != TargetFormat.FP8 && experts != TargetFormat.KEEP)
                    || (dense != TargetFormat.FP8 && dense != TargetFormat.KEEP) || lmHead != TargetFormat.KEEP)) {
                throw new IllegalArgumentException("the fp8 layout holds FP8 weights only and keeps the lm head in float"
                        + " (as DeepSeek-V3 does); use compressed-tensors for int4/int8 or a quantized lm head");
            }
        }
    }

    /** One quantized tensor's line of the report. */
    public record Report(String tensor, String format, WeightQuantizer.Error error) {}

    private CheckpointQuantizer() {}

    /** Quantizes the checkpoint in {@code source} into {@code target} (created; must not be {@code source}). */
    public static List<Report> quantize(Path source, Path target, Options options) {
        if (source.toAbsolutePath().normalize().equals(target.toAbsolutePath().normalize())) {
            throw new IllegalArgumentException("the output directory must differ from the checkpoint's");
        }
        ModelConfig config = ConfigParser.load(source);
        Map<String, Report> reports = new ConcurrentHashMap<>();
        try (Checkpoint ck = Checkpoint.open(source)) {
            if (ck.quantization().isQuantized()) {
                throw new CheckpointException(source + " is already quantized (" + ck.quantization().describe() + ")");
            }
            checkMxfp4(config, options);
            Set<String> experts = new TreeSet<>();
            Set<String> dense = new TreeSet<>();
            classify(config, experts, dense);
            if (options.expertFormats() != null && !options.expertFormats().keySet().equals(experts)) {
                throw new IllegalArgumentException("the mixed-precision plan must name every routed expert tensor of "
                        + source + " and nothing else");
            }
            for (String name : experts) {
                if (!ck.contains(name)) {
                    throw new CheckpointException(source + " lacks " + name + " (fused expert tensors must be split into"
                            + " the per-expert layout before quantizing)");
                }
            }
            List<TensorSpec> specs = new ArrayList<>();
            for (String name : ck.names()) {
                TargetFormat f = experts.contains(name)
                        ? (options.expertFormats() != null ? options.expertFormats().get(name) : options.experts())
                        : dense.contains(name) ? options.dense()
                        : name.equals(TensorLayout.lmHead()) ? options.lmHead() : TargetFormat.KEEP;
                Tensor t = ck.tensor(name);
                if (f == TargetFormat.KEEP) {
                    specs.add(TensorSpec.copyOf(name, t));
                    continue;
                }
                if (f == TargetFormat.MXFP4) {
                    addMxfp4Experts(t, specs, reports);
                    continue;
                }
                addQuantized(t.asMatrix(), f, options, specs, reports);
            }
            Files.createDirectories(target);
            ShardedCheckpointWriter.write(target, specs, SHARD_BYTES);
            ShardedCheckpointWriter.copyOtherFiles(source, target);
            writeConfig(source, target, experts, dense, options);
        } catch (IOException e) {
            throw new CheckpointException("cannot write " + target + ": " + e, e);
        }
        return reports.values().stream().sorted((a, b) -> a.tensor().compareTo(b.tensor())).toList();
    }

    /**
     * MXFP4 is written as gpt-oss ships it, for its fused experts only, with everything else in float (one
     * quantization_config cannot describe MXFP4 experts beside compressed-tensors layers); gpt-oss's fused
     * three-dimensional experts have no compressed-tensors form here, so they are MXFP4 or float.
     */
    private static void checkMxfp4(ModelConfig config, Options o) {
        boolean gptOss = config.architecture() == Architecture.GPT_OSS;
        if (o.dense() == TargetFormat.MXFP4 || o.lmHead() == TargetFormat.MXFP4) {
            throw new IllegalArgumentException("mxfp4 is written for gpt-oss's experts only, not for dense layers or the lm head");
        }
        if (o.experts() == TargetFormat.MXFP4 && !gptOss) {
            throw new IllegalArgumentException("mxfp4 checkpoints are gpt-oss's format; " + config.architecture().hfClassName()
                    + " experts can be int4, int8 or fp8 (expert pods can also hold any float experts as mxfp4:"
                    + " moe.expert.quantize=mxfp4)");
        }
        if (gptOss && o.experts() != TargetFormat.MXFP4 && o.experts() != TargetFormat.KEEP) {
            throw new IllegalArgumentException("gpt-oss's experts are written as mxfp4 (as the hub ships them) or kept");
        }
        if (o.experts() == TargetFormat.MXFP4 && (o.dense() != TargetFormat.KEEP || o.lmHead() != TargetFormat.KEEP)) {
            throw new IllegalArgumentException("an mxfp4 gpt-oss checkpoint keeps attention, router and lm head in float,"
                    + " as the hub's does");
        }
    }

    /**
     * A gpt-oss fused expert tensor [E, in, out] (transformers' layout) as the hub stores it in MXFP4:
     * {@code name_blocks} [E, out, in / 32, 16] and {@code name_scales} [E, out, in / 32], output-major.
     */
    private static void addMxfp4Experts(Tensor t, List<TensorSpec> specs, Map<String, Report> reports) {
        int experts = (int) t.shape()[0];
        int in = (int) t.shape()[1];
        int outs = (int) t.shape()[2];
        if (in % Mxfp4.BLOCK != 0) {
            throw new CheckpointException(t.name() + " has " + in + " inputs per expert; mxfp4 needs a multiple of " + Mxfp4.BLOCK);
        }
        specs.addAll(Mxfp4.fusedTensors(t.name(), experts, in, outs, () -> {
            Mxfp4.Quantized[] q = Mxfp4.quantizeFused(t::getFloat, experts, in, outs);
            reports.put(t.name(), new Report(t.name(), "mxfp4 (e2m1, e8m0 scale per 32)", fusedError(t, q, in, outs)));
            return q;
        }));
    }

    /** The error of the quantized experts against the [E, in, out] weights; rows are expert x's output o, x · out + o. */
    private static WeightQuantizer.Error fusedError(Tensor t, Mxfp4.Quantized[] q, int in, int outs) {
        double err = 0, norm = 0, worst = -1;
        int worstRow = 0;
        for (int x = 0; x < q.length; x++) {
            float[] back = Mxfp4.dequantize(q[x].blocks(), q[x].scales(), outs, in);
            long base = (long) x * in * outs;
            for (int o = 0; o < outs; o++) {
                double rowErr = 0, rowNorm = 0;
                for (int i = 0; i < in; i++) {
                    double w = t.getFloat(base + (long) i * outs + o);
                    double d = back[o * in + i] - w;
                    rowErr += d * d;
                    rowNorm += w * w;
                }
                err += rowErr;
                norm += rowNorm;
                double rel = rowNorm == 0 ? 0 : Math.sqrt(rowErr / rowNorm);
                if (rel > worst) {
                    worst = rel;
                    worstRow = x * outs + o;
                }
            }
        }
        return new WeightQuantizer.Error(norm == 0 ? 0 : Math.sqrt(err / norm), worstRow, worst);
    }

    /**
     * A mixed-precision plan for the checkpoint in {@code source}: its routed experts' shape (every routed expert of
     * a model has the same projections), each MoE layer's importances from {@code stats}, then
     * {@link MixedPrecision#plan}.
     */
    public static MixedPrecision.Plan planMixed(Path source, RoutingStats stats, int[] choices, double averageBits,
                                                MixedPrecision.Budget budget, MixedPrecision.Assignment assignment, long seed,
                                                int groupSize) {
        ModelConfig config = ConfigParser.load(source);
        if (stats.layers() != config.numLayers() || stats.experts() != config.moe().numFfnExperts()) {
            throw new IllegalArgumentException("routing statistics of " + stats.layers() + " layers x " + stats.experts()
                    + " experts do not fit " + source);
        }
        ModelFamily family = config.architecture().family();
        double[][] importance = new double[config.numLayers()][];
        Set<String> experts = new TreeSet<>();
        classify(config, experts, new TreeSet<>());
        int first = -1;
        for (int l = 0; l < config.numLayers(); l++) {
            if (!config.isSparse(l)) continue;
            importance[l] = stats.importance(l);
            if (first < 0) first = l;
        }
        if (first < 0) throw new IllegalArgumentException(source + " has no routed experts");
        String prefix = family.expertPrefix(first, 0);
        List<int[]> shapes = new ArrayList<>();
        DType dtype = null;
        try (Checkpoint ck = Checkpoint.open(source)) {
            for (String name : experts) {
                if (!name.startsWith(prefix)) continue;
                Tensor t = ck.tensor(name);
                shapes.add(new int[] {(int) t.shape()[0], (int) t.shape()[1]});
                dtype = t.dtype();
            }
        }
        if (shapes.isEmpty()) throw new CheckpointException(source + " lacks the tensors of " + prefix);
        return MixedPrecision.plan(importance, new MixedPrecision.ExpertShape(shapes, groupSize, dtype), choices, averageBits,
                budget, assignment, seed);
    }

    /** Each routed expert tensor's format under {@code plan}: all projections of an expert at its width. */
    public static Map<String, TargetFormat> expertFormats(Path source, MixedPrecision.Plan plan) {
        ModelConfig config = ConfigParser.load(source);
        ModelFamily family = config.architecture().family();
        Set<String> experts = new TreeSet<>();
        classify(config, experts, new TreeSet<>());
        Map<String, TargetFormat> out = new java.util.TreeMap<>();
        for (int l = 0; l < config.numLayers(); l++) {
            if (!config.isSparse(l)) continue;
            for (int x = 0; x < config.moe().numFfnExperts(); x++) {
                String prefix = family.expertPrefix(l, x);
                TargetFormat f = TargetFormat.packedInt(plan.bits()[l][x]);
                for (String name : experts) if (name.startsWith(prefix)) out.put(name, f);
            }
        }
        return out;
    }

    /** Routed expert projections, and the other linear layers that are projections (not gates, not the lm head). */
    static void classify(ModelConfig config, Set<String> experts, Set<String> dense) {
        ModelFamily family = config.architecture().family();
        ExpertProjections p = family.expertProjections();
        for (int i = 0; i < config.numLayers(); i++) {
            if (!config.isSparse(i)) continue;
            for (int x = 0; x < config.moe().numFfnExperts(); x++) {
                String ep = family.expertPrefix(i, x);
                if (!p.fusedGateUp()) experts.add(ep + p.gate());
                experts.add(ep + p.up());
                experts.add(ep + p.down());
            }
        }
        for (ExpectedTensor t : new TensorLayout(config).expectedTensors()) {
            if (t.role() != TensorRole.LINEAR || experts.contains(t.name()) || !t.name().endsWith(".weight")) continue;
            String module = t.name().substring(0, t.name().length() - ".weight".length());
            String last = module.substring(module.lastIndexOf('.') + 1);
            if (last.contains("proj")) dense.add(t.name());
        }
    }

    private static void addQuantized(WeightMatrix w, TargetFormat f, Options options, List<TensorSpec> specs,
                                     Map<String, Report> reports) {
        String name = w.name();
        int rows = w.rows(), cols = w.cols();
        DType scaleType = options.fp8Layout() ? DType.F32 : w.dtype();
        int br = f == TargetFormat.FP8 ? FP8_BLOCK : 1;
        int bc = f == TargetFormat.FP8 ? FP8_BLOCK : options.groupSize();
        long[] scaleShape = {(rows + br - 1) / br, (cols + bc - 1) / bc};
        String description = f == TargetFormat.FP8 ? "fp8 e4m3, blocks of 128x128" : f.name().toLowerCase() + ", groups of " + bc;
        TensorSpec.Filler codes = target -> reports.put(name,
                new Report(name, description, WeightQuantizer.writeCodes(w, f, br, bc, scaleType, target)));
        TensorSpec.Filler scales = target -> WeightQuantizer.writeScales(w, f, br, bc, scaleType, target);
        if (f == TargetFormat.FP8) {
            specs.add(new TensorSpec(name, DType.F8_E4M3, new long[] {rows, cols}, codes));
            specs.add(new TensorSpec(name + (options.fp8Layout() ? "_scale_inv" : "_scale"), scaleType, scaleShape, scales));
            return;
        }
        int perWord = 32 / f.bits();
        specs.add(new TensorSpec(name + "_packed", DType.I32, new long[] {rows, (cols + perWord - 1) / perWord}, codes));
        specs.add(new TensorSpec(name + "_scale", scaleType, scaleShape, scales));
        specs.add(new TensorSpec(name + "_shape", DType.I32, new long[] {2}, target -> {
            target.set(TensorAccess.I32_LE, 0, rows);
            target.set(TensorAccess.I32_LE, 4, cols);
        }));
    }

    private static void writeConfig(Path source, Path target, Set<String> experts, Set<String> dense, Options o)
            throws IOException {
        ObjectNode config = (ObjectNode) MAPPER.readTree(source.resolve("config.json").toFile());
        Set<String> all = new TreeSet<>();
        try (Checkpoint ck = Checkpoint.open(source)) {
            for (String n : ck.names()) if (n.endsWith(".weight")) all.add(module(n));
        }
        JsonNode q = quantizationConfig(experts, dense, all, o);
        if (o.expertFormats() != null) checkMixedTargets(q, o.expertFormats(), target);
        config.set("quantization_config", q);
        MAPPER.writeValue(target.resolve("config.json").toFile(), config);
    }

    static JsonNode quantizationConfig(Set<String> experts, Set<String> dense, Set<String> allModules, Options o) {
        ObjectNode q = MAPPER.createObjectNode();
        if (o.experts() == TargetFormat.MXFP4) {
            // gpt-oss's own config: everything but the routed experts stays in float.
            q.put("quant_method", "mxfp4");
            q.putArray("modules_to_not_convert").add("model.layers.*.self_attn").add("model.layers.*.mlp.router")
                    .add("model.embed_tokens").add("lm_head");
            return q;
        }
        if (o.fp8Layout()) {
            // DeepSeek-V3's layout: every linear layer may be FP8; the ones kept in float are listed.
            q.put("quant_method", "fp8");
            q.put("fmt", "e4m3");
            q.put("activation_scheme", "dynamic");
            ArrayNode block = q.putArray("weight_block_size");
            block.add(FP8_BLOCK).add(FP8_BLOCK);
            ArrayNode keep = q.putArray("modules_to_not_convert");
            if (o.experts() == TargetFormat.KEEP) experts.forEach(n -> keep.add(module(n)));
            if (o.dense() == TargetFormat.KEEP) dense.forEach(n -> keep.add(module(n)));
            return q;
        }
        q.put("quant_method", "compressed-tensors");
        q.put("format", "mixed-precision");
        q.put("quantization_status", "compressed");
        ObjectNode groups = q.putObject("config_groups");
        if (o.expertFormats() != null) mixedExpertGroups(groups, o);
        Map<String, Set<String>> byGroup = new LinkedHashMap<>();
        if (o.experts() != TargetFormat.KEEP && o.expertFormats() == null) byGroup.put("experts", experts);
        if (o.dense() != TargetFormat.KEEP) byGroup.put("dense", dense);
        if (o.lmHead() != TargetFormat.KEEP) byGroup.put("lm_head", Set.of(TensorLayout.lmHead()));
        for (Map.Entry<String, Set<String>> e : byGroup.entrySet()) {
            TargetFormat f = switch (e.getKey()) {
                case "experts" -> o.experts();
                case "dense" -> o.dense();
                default -> o.lmHead();
            };
            ObjectNode g = groups.putObject("group_" + e.getKey());
            ArrayNode targets = g.putArray("targets");
            Set<String> modules = new TreeSet<>();
            e.getValue().forEach(n -> modules.add(module(n)));
            if (e.getKey().equals("lm_head")) targets.add("lm_head");
            else targets(modules, allModules).forEach(targets::add);
            weights(g, f, o.groupSize());
        }
        if (o.lmHead() == TargetFormat.KEEP) q.putArray("ignore").add("lm_head");
        else q.putArray("ignore");
        return q;
    }

    /**
     * Declares int8 activations in the compressed-tensors {@code quantization_config} of the checkpoint in {@code dir}
     * (as {@code moe quantize --input-activations int8} writes it): every config group of integer weights gets
     * {@code input_activations} of 8 bits, int, symmetric, dynamic, in groups of 32 columns, which the runtime reads
     * as int8 activations for the matrices the group targets. Returns how many groups it marked.
     */
    public static int declareInt8Activations(Path dir) throws IOException {
        Path file = dir.resolve("config.json");
        ObjectNode config = (ObjectNode) MAPPER.readTree(file.toFile());
        JsonNode q = config.get("quantization_config");
        if (q == null || !"compressed-tensors".equals(q.path("quant_method").asText())) {
            throw new IllegalArgumentException(file + " has no compressed-tensors quantization_config to declare int8 activations in");
        }
        int marked = 0;
        for (Iterator<Map.Entry<String, JsonNode>> it = q.path("config_groups").fields(); it.hasNext(); ) {
            ObjectNode g = (ObjectNode) it.next().getValue();
            if (!"int".equals(g.path("weights").path("type").asText())) continue;
            ObjectNode a = g.putObject("input_activations");
            a.put("num_bits", 8);
            a.put("type", "int");
            a.put("symmetric", true);
            a.put("dynamic", true);
            a.put("strategy", "group");
            a.put("group_size", 32);
            marked++;
        }
        MAPPER.writeValue(file.toFile(), config);
        return marked;
    }

    /** A config group's weight arguments and format for {@code f}. */
    private static void weights(ObjectNode g, TargetFormat f, int groupSize) {
        ObjectNode w = g.putObject("weights");
        w.put("num_bits", f.bits());
        w.put("type", f == TargetFormat.FP8 ? "float" : "int");
        w.put("symmetric", true);
        w.put("dynamic", false);
        if (f == TargetFormat.FP8) {
            w.put("strategy", "block");
            w.putArray("block_structure").add(FP8_BLOCK).add(FP8_BLOCK);
            g.put("format", "float-quantized");
        } else {
            w.put("strategy", "group");
            w.put("group_size", groupSize);
            g.put("format", "pack-quantized");
        }
    }

    /**
     * One config group per expert width ({@code group_experts_int3}, ...), its targets one {@code re:} pattern per
     * layer naming that layer's experts at that width: {@code model\.layers\.3\.mlp\.experts\.(?:1|5|12)\.
     * (?:down_proj|gate_proj|up_proj)$}, the module names' common part written once and the expert numbers as an
     * alternation. compressed-tensors, vLLM and this runtime match them at the start of the module name.
     */
    private static void mixedExpertGroups(ObjectNode groups, Options o) {
        Map<Integer, Map<String, Set<String>>> byBits = new java.util.TreeMap<>();
        for (Map.Entry<String, TargetFormat> e : o.expertFormats().entrySet()) {
            String module = module(e.getKey());
            // ...layers.L.mlp.experts.E.proj: the layer's experts' prefix, the expert number, the projection.
            String proj = module.substring(module.lastIndexOf('.') + 1);
            String expertPath = module.substring(0, module.lastIndexOf('.'));
            String expert = expertPath.substring(expertPath.lastIndexOf('.') + 1);
            String prefix = expertPath.substring(0, expertPath.lastIndexOf('.') + 1);
            byBits.computeIfAbsent(e.getValue().bits(), b -> new java.util.TreeMap<>())
                    .computeIfAbsent(prefix, p -> new TreeSet<>()).add(expert + "." + proj);
        }
        for (Map.Entry<Integer, Map<String, Set<String>>> b : byBits.entrySet()) {
            ObjectNode g = groups.putObject("group_experts_int" + b.getKey());
            ArrayNode targets = g.putArray("targets");
            for (Map.Entry<String, Set<String>> layer : b.getValue().entrySet()) {
                Set<String> numbers = new TreeSet<>((x, y) -> Integer.compare(Integer.parseInt(x), Integer.parseInt(y)));
                Set<String> projections = new TreeSet<>();
                for (String ep : layer.getValue()) {
                    numbers.add(ep.substring(0, ep.indexOf('.')));
                    projections.add(ep.substring(ep.indexOf('.') + 1));
                }
                // Every expert of the layer at one width has all its projections at that width (MixedPrecision
                // plans whole experts), so experts × projections is exactly the set; checked after writing.
                targets.add("re:" + escape(layer.getKey()) + "(?:" + String.join("|", numbers) + ")\\."
                        + "(?:" + String.join("|", projections) + ")$");
            }
            weights(g, TargetFormat.packedInt(b.getKey()), o.groupSize());
        }
    }

    /** Reads the written config back as the loader will and checks that each expert module gets its width. */
    private static void checkMixedTargets(JsonNode q, Map<String, TargetFormat> formats, Path target) {
        io.moeserve.runtime.checkpoint.QuantizationConfig parsed =
                io.moeserve.runtime.checkpoint.QuantizationConfig.parse(q, target + " quantization_config");
        for (Map.Entry<String, TargetFormat> e : formats.entrySet()) {
            var scheme = parsed.schemeFor(module(e.getKey()));
            if (scheme == null || scheme.bits() != e.getValue().bits()) {
                throw new IllegalStateException("the config groups written give " + module(e.getKey()) + " "
                        + (scheme == null ? "no scheme" : scheme.description()) + ", not int" + e.getValue().bits());
            }
        }
    }

    /**
     * Targets that select exactly {@code modules} among {@code all}: each name with its numbers (layers, experts)
     * generalised to {@code \d+}, as a {@code re:} pattern, when those few patterns match no other module; else
     * the names themselves. A DeepSeek-V3 has 44 thousand expert modules and three patterns for them.
     */
    static List<String> targets(Set<String> modules, Set<String> all) {
        Set<String> patterns = new TreeSet<>();
        for (String m : modules) patterns.add("re:" + escape(m).replaceAll("[0-9]+", "\\\\d+") + "$");
        List<java.util.regex.Pattern> compiled = patterns.stream().map(p -> java.util.regex.Pattern.compile(p.substring(3))).toList();
        for (String other : all) {
            if (modules.contains(other)) continue;
            for (java.util.regex.Pattern p : compiled) {
                if (p.matcher(other).lookingAt()) return List.copyOf(modules);
            }
        }
        return List.copyOf(patterns);
    }

    /** A literal for Python's and Java's regular expressions alike (module names hold letters, digits, _ and .). */
    private static String escape(String literal) {
        StringBuilder b = new StringBuilder();
        for (char c : literal.toCharArray()) {
            if (!Character.isLetterOrDigit(c) && c != '_') b.append('\\');
            b.append(c);
        }
        return b.toString();
    }

    private static String module(String weightName) {
        return weightName.substring(0, weightName.length() - ".weight".length());
    }
}
