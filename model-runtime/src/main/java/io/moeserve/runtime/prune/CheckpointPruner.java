package io.moeserve.runtime.prune;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.checkpoint.ShardedCheckpointWriter;
import io.moeserve.runtime.checkpoint.TensorSpec;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.family.ModelFamily;
import io.moeserve.runtime.quantize.RoutingStats;
import io.moeserve.runtime.tensor.Tensor;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * Writes a checkpoint without some routed experts ({@code moe prune}): frequency-based expert pruning as EEP's
 * discrete phase and MC-SMoE's usage statistic describe it (../shared/docs/moe-architectures-and-techniques.md §2.6),
 * with importance = how often the gates chose the expert × the mean weight they gave it.
 *
 * <p>Design. Pruning cuts the same number of experts from every MoE layer, since config.json holds one expert count.
 * In each MoE layer the kept experts are renumbered densely in their old order; the gate's rows of the pruned
 * experts are cut from {@code gate.weight} (and from DeepSeek-V3's / GLM-4.5's {@code e_score_correction_bias}), so
 * the family's own gate renormalises by itself: softmax over the rest, top-k among the rest. That is exactly the
 * original model with those experts' gate logits at −∞, which {@code PrunedExperts} does at run time: the two are
 * each other's differential test. Every other tensor is copied byte for byte, quantized ones included (a pruned
 * expert's {@code _packed}/{@code _scale} tensors go with it). The expert count in config.json
 * (num_local_experts, num_experts or n_routed_experts) is the only config change, so the placement planner and the
 * chart, which read it, plan for fewer expert slots with no change of their own.
 *
 * <p>Supported: Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE, DeepSeek-V2/V3 and GLM-4.5 when routing is not group-limited
 * (n_group ≤ 1 or topk_method greedy), in the hub's per-expert layout. Refused, with the reason: gpt-oss (one fused
 * tensor per projection, with per-expert biases, would need slicing every fused tensor), MoE++ (its gate also
 * routes to zero-computation experts), transformers v5's fused layout, and group-limited routing (the groups are
 * equal slices of the expert ids; removing experts would change which experts share a group).
 */
public final class CheckpointPruner {
    private static final JsonMapper MAPPER = JsonMapper.builder().enable(SerializationFeature.INDENT_OUTPUT).build();
    private static final long SHARD_BYTES = 4L << 30;
    private static final Set<Architecture> SUPPORTED = EnumSet.of(Architecture.MIXTRAL, Architecture.QWEN2_MOE,
            Architecture.QWEN3_MOE, Architecture.OLMOE, Architecture.DEEPSEEK_V2, Architecture.DEEPSEEK_V3, Architecture.GLM4_MOE);
    private static final String[] COUNT_KEYS = {"num_local_experts", "num_experts", "n_routed_experts"};

    private CheckpointPruner() {}

    /**
     * Importance per (layer, expert) from routing statistics ({@link RoutingStats}: {@code moe eval --routing-stats}'s
     * file or the router's {@code /v1/routing-stats} JSON): count × mean combine weight, which is the sum of the
     * weights the gates gave the expert (count alone where the file has no weights).
     */
    public static double[][] importance(Path stats, ModelConfig config) {
        return importance(RoutingStats.read(stats, config.numLayers(), config.moe().numExperts()));
    }

    /** count × mean weight per (layer, expert) of these statistics. */
    public static double[][] importance(RoutingStats stats) {
        double[][] out = new double[stats.layers()][stats.experts()];
        for (int l = 0; l < out.length; l++) {
            for (int e = 0; e < out[l].length; e++) out[l][e] = stats.count(l, e) * stats.meanWeight(l, e);
        }
        return out;
    }

    /**
     * The experts to prune: in every MoE layer, the {@code E − keep} of lowest importance (ties: the higher id
     * goes), with {@code keep = max(top_k, round(keepFraction · E))}.
     *
     * @param importance importance[layer][expert] for every layer (dense layers: ignored)
     * @return pruned[layer] sorted expert ids, empty for dense layers
     */
    public static int[][] leastImportant(ModelConfig config, double[][] importance, double keepFraction) {
        if (!(keepFraction > 0 && keepFraction <= 1)) throw new IllegalArgumentException("keep fraction must lie in (0, 1], got " + keepFraction);
        int e = config.moe().numExperts();
        int keep = Math.max(config.moe().topK(), (int) Math.round(keepFraction * e));
        int[][] pruned = new int[config.numLayers()][];
        for (int l = 0; l < config.numLayers(); l++) {
            if (!config.isSparse(l)) {
                pruned[l] = new int[0];
                continue;
            }
            double[] score = importance[l];
            if (score == null || score.length != e) {
                throw new IllegalArgumentException("importance of layer " + l + " must hold " + e + " values");
            }
            Integer[] order = new Integer[e];
            for (int i = 0; i < e; i++) order[i] = i;
            // Most important first; on a tie the lower id stays.
            Arrays.sort(order, (a, b) -> score[a] != score[b] ? Double.compare(score[b], score[a]) : Integer.compare(a, b));
            int[] out = new int[e - keep];
            for (int i = keep; i < e; i++) out[i - keep] = order[i];
            Arrays.sort(out);
            pruned[l] = out;
        }
        return pruned;
    }

    /**
     * Writes {@code source} without the experts {@code pruned[layer]} into {@code target}.
     *
     * @throws IllegalArgumentException for an unsupported model, or layers pruned by different counts
     */
    public static void write(Path source, Path target, int[][] pruned) {
        ModelConfig config = ConfigParser.load(source);
        Architecture arch = config.architecture();
        JsonNode json = readConfig(source);
        refuseUnsupported(arch, json);
        int experts = config.moe().numExperts();
        int count = -1;
        int[][] renumber = new int[config.numLayers()][];
        for (int l = 0; l < config.numLayers(); l++) {
            if (!config.isSparse(l)) continue;
            int[] p = l < pruned.length && pruned[l] != null ? pruned[l] : new int[0];
            if (count >= 0 && p.length != count) {
                throw new IllegalArgumentException("every MoE layer must lose as many experts (config.json holds one expert count): layer " + l
                        + " loses " + p.length + ", an earlier one " + count);
            }
            count = p.length;
            renumber[l] = new int[experts];
            int next = 0;
            for (int e = 0; e < experts; e++) {
                if (Arrays.binarySearch(p, e) >= 0) {
                    renumber[l][e] = -1;
                } else {
                    renumber[l][e] = next++;
                }
            }
            for (int e : p) if (e < 0 || e >= experts) throw new IllegalArgumentException("layer " + l + " has no expert " + e);
            if (next < config.moe().topK()) throw new IllegalArgumentException("layer " + l + " would keep fewer experts than top-k");
        }
        ModelFamily family = arch.family();
        try (Checkpoint ck = Checkpoint.open(source)) {
            for (String name : ck.names()) {
                if (name.contains(".mlp.experts.gate_up_proj") || name.contains(".mlp.experts.down_proj")) {
                    throw new IllegalArgumentException("moe prune reads the hub's per-expert layout; " + name + " is transformers v5's fused one");
                }
            }
            List<TensorSpec> specs = new ArrayList<>();
            for (String name : new TreeSet<>(ck.names())) {
                TensorSpec spec = prunedSpec(family, config, ck.tensor(name), renumber);
                if (spec != null) specs.add(spec);
            }
            Files.createDirectories(target);
            ShardedCheckpointWriter.write(target, specs, SHARD_BYTES);
            ShardedCheckpointWriter.copyOtherFiles(source, target);
            ObjectNode out = json.deepCopy();
            for (String key : COUNT_KEYS) if (out.has(key)) out.put(key, experts - Math.max(count, 0));
            MAPPER.writeValue(target.resolve("config.json").toFile(), out);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The tensor as the pruned checkpoint holds it: renamed, row-sliced, copied, or null when it goes. */
    private static TensorSpec prunedSpec(ModelFamily family, ModelConfig config, Tensor t, int[][] renumber) {
        String name = t.name();
        for (int l = 0; l < config.numLayers(); l++) {
            if (renumber[l] == null) continue;
            String moe = family.moePrefix(l);
            if (!name.startsWith(moe)) continue;
            String experts = moe + "experts.";
            if (name.startsWith(experts)) {
                int dot = name.indexOf('.', experts.length());
                int e = Integer.parseInt(name.substring(experts.length(), dot));
                int to = renumber[l][e];
                return to < 0 ? null : TensorSpec.copyOf(experts + to + name.substring(dot), t);
            }
            if (name.equals(moe + "gate.weight") || name.equals(moe + "gate.e_score_correction_bias")) return keptRows(t, renumber[l]);
        }
        return TensorSpec.copyOf(name, t);
    }

    /** The rows (first dimension) of the kept experts, in their new order. */
    private static TensorSpec keptRows(Tensor t, int[] renumber) {
        long[] shape = t.shape();
        long rows = shape[0];
        if (rows != renumber.length) {
            throw new IllegalArgumentException(t.name() + " has " + rows + " rows, not one per expert (" + renumber.length + ")");
        }
        long rowBytes = t.data().byteSize() / rows;
        int kept = 0;
        for (int r : renumber) if (r >= 0) kept++;
        long[] out = shape.clone();
        out[0] = kept;
        MemorySegment data = t.data();
        return new TensorSpec(t.name(), t.dtype(), out, target -> {
            for (int e = 0; e < renumber.length; e++) {
                if (renumber[e] >= 0) MemorySegment.copy(data, e * rowBytes, target, renumber[e] * rowBytes, rowBytes);
            }
        });
    }

    private static void refuseUnsupported(Architecture arch, JsonNode json) {
        if (!SUPPORTED.contains(arch)) {
            String why = switch (arch) {
                case GPT_OSS -> "its experts are fused tensors with per-expert biases";
                case MOE_PLUS_PLUS -> "its gate also routes to zero-computation experts";
                default -> "it is not one of the supported architectures";
            };
            throw new IllegalArgumentException("moe prune does not support " + arch.hfClassName() + ": " + why
                    + " (supported: Mixtral, Qwen2-MoE, Qwen3-MoE, OLMoE, DeepSeek-V2/V3 and GLM-4.5 without group-limited routing)");
        }
        int groups = json.path("n_group").asInt(1);
        String method = json.path("topk_method").asText("");
        if (groups > 1 && !method.equals("greedy")) {
            throw new IllegalArgumentException("moe prune does not support group-limited routing (n_group " + groups + ", topk_method "
                    + method + "): the groups are equal slices of the expert ids, so removing experts would regroup the rest");
        }
    }

    private static JsonNode readConfig(Path dir) {
        try {
            return MAPPER.readTree(dir.resolve("config.json").toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
