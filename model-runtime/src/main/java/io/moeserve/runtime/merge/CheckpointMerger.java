package io.moeserve.runtime.merge;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.checkpoint.ShardedCheckpointWriter;
import io.moeserve.runtime.checkpoint.TensorSpec;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.family.ExpertProjections;
import io.moeserve.runtime.family.ModelFamily;
import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Tensor;
import io.moeserve.runtime.tensor.TensorAccess;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeSet;
import java.util.stream.IntStream;

/**
 * Writes a checkpoint whose routed experts are merged in groups ({@code moe merge}), as M-SMoE describes
 * (../shared/docs/moe-architectures-and-techniques.md §2.6): the gate is kept whole and still scores every original
 * expert, an alias table in config.json ({@code expert_alias}, per layer: original id → merged id) sends each
 * original expert to the merged expert that stands for its group, and each merged expert is stored once.
 *
 * <p>Grouping. In each MoE layer the M most important experts (importance = routing count × mean gate weight, the
 * statistic pruning ranks by) are the groups' dominant experts, exactly the experts pruning to M would keep; every
 * other expert joins the dominant expert whose gate row ({@code gate.weight}, the router logits' weights) is most
 * similar by cosine. M-SMoE compares router logits on calibration tokens; the gate rows are what those logits are
 * made of, need no data beyond the statistics, and make the grouping a pure function of the checkpoint. (HC-SMoE's
 * expert outputs would need a forward pass through every expert on calibration tokens; not done.)
 *
 * <p>Alignment. A SwiGLU expert's intermediate neurons can be permuted (gate and up rows, down columns together)
 * without changing it, so two independently trained experts need not have their neurons in corresponding places.
 * With alignment on (the default), each member's neurons are permuted to best match the dominant expert's before
 * averaging: weight matching, the assignment maximising Σ ⟨neuron of the dominant, neuron of the member⟩ over the
 * concatenated gate row, up row and down column, solved exactly ({@link Assignment}).
 *
 * <p>Merging. A group's expert is the frequency-weighted average of its members' (aligned) gate, up and down
 * weights, each member weighted by its share of the group's importance (equal shares where the group's importance
 * is 0). A group of one is copied byte for byte, so merging with groups of one is the original model bit for bit.
 * Merged ids are the dominant experts in their original order. Everything but the routed experts is copied byte for
 * byte, the gate included; config.json gains {@code expert_alias} and keeps its expert count (the gate's outputs).
 *
 * <p>Supported: every family whose gate outputs are all FFN experts stored per expert in float (F32, BF16, F16):
 * Mixtral, Qwen2/3-MoE, OLMoE, DeepSeek-V2/V3, GLM-4.5, group-limited routing included (the gate does not change).
 * Refused: gpt-oss (fused experts with biases), MoE++ (zero-computation experts), transformers v5's fused layout,
 * quantized experts (merge before quantizing).
 */
public final class CheckpointMerger {
    private static final JsonMapper MAPPER = JsonMapper.builder().enable(SerializationFeature.INDENT_OUTPUT).build();
    private static final long SHARD_BYTES = 4L << 30;

    private CheckpointMerger() {}

    /**
     * The alias table: per MoE layer, the merged id of each original expert (null for dense layers), from
     * importance[layer][expert] and the gate rows' cosine similarity, with {@code merged} experts per layer.
     */
    public static int[][] groups(Path source, double[][] importance, int merged) {
        ModelConfig config = ConfigParser.load(source);
        int n = config.moe().numExperts();
        if (merged < 1 || merged > n) throw new IllegalArgumentException("merged experts per layer must lie in [1, " + n + "], got " + merged);
        refuseUnsupported(config);
        ModelFamily family = config.architecture().family();
        int[][] alias = new int[config.numLayers()][];
        try (Checkpoint ck = Checkpoint.open(source)) {
            for (int l = 0; l < config.numLayers(); l++) {
                if (!config.isSparse(l)) continue;
                double[] score = importance[l];
                if (score == null || score.length != n) {
                    throw new IllegalArgumentException("importance of layer " + l + " must hold " + n + " values");
                }
                float[] gate = ck.tensor(family.moePrefix(l) + "gate.weight", n, config.hiddenSize()).toFloatArray();
                alias[l] = groupLayer(score, gate, config.hiddenSize(), merged);
            }
        }
        return alias;
    }

    /** One layer's alias: the {@code merged} most important experts lead, the rest join the most similar leader. */
    static int[] groupLayer(double[] importance, float[] gateRows, int hidden, int merged) {
        int n = importance.length;
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) order[i] = i;
        // Most important first; on a tie the lower id leads (pruning's order).
        Arrays.sort(order, (a, b) -> importance[a] != importance[b] ? Double.compare(importance[b], importance[a]) : Integer.compare(a, b));
        boolean[] leads = new boolean[n];
        for (int i = 0; i < merged; i++) leads[order[i]] = true;
        int[] alias = new int[n];
        int[] idOf = new int[n];
        int next = 0;
        for (int e = 0; e < n; e++) if (leads[e]) idOf[e] = next++;
        for (int e = 0; e < n; e++) {
            if (leads[e]) {
                alias[e] = idOf[e];
                continue;
            }
            int best = -1;
            double bestSimilarity = Double.NEGATIVE_INFINITY;
            for (int d = 0; d < n; d++) {
                if (!leads[d]) continue;
                double s = cosine(gateRows, e * hidden, d * hidden, hidden);
                if (s > bestSimilarity) {
                    bestSimilarity = s;
                    best = d;
                }
            }
            alias[e] = idOf[best];
        }
        return alias;
    }

    private static double cosine(float[] m, int a, int b, int len) {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < len; i++) {
            dot += (double) m[a + i] * m[b + i];
            na += (double) m[a + i] * m[a + i];
            nb += (double) m[b + i] * m[b + i];
        }
        return na == 0 || nb == 0 ? 0 : dot / Math.sqrt(na * nb);
    }

    /**
     * Writes {@code source} with its routed experts merged by {@code alias} (as {@link #groups} returns it) into
     * {@code target}; {@code importance} weights each group's members.
     */
    public static void write(Path source, Path target, int[][] alias, double[][] importance, boolean align) {
        ModelConfig config = ConfigParser.load(source);
        refuseUnsupported(config);
        int n = config.moe().numExperts();
        int merged = -1;
        int[][][] members = new int[config.numLayers()][][];
        for (int l = 0; l < config.numLayers(); l++) {
            if (!config.isSparse(l)) continue;
            int[] a = alias[l];
            if (a == null || a.length != n) throw new IllegalArgumentException("the alias of layer " + l + " must map all " + n + " experts");
            int m = Arrays.stream(a).max().orElse(-1) + 1;
            if (merged >= 0 && m != merged) throw new IllegalArgumentException("every MoE layer must merge to as many experts");
            merged = m;
            members[l] = new int[m][];
            for (int g = 0; g < m; g++) {
                final int id = g;
                members[l][g] = IntStream.range(0, n).filter(e -> a[e] == id).toArray();
                if (members[l][g].length == 0) throw new IllegalArgumentException("layer " + l + " never uses merged expert " + g);
                // The leader (its most important member) comes first: the others are aligned to it.
                double[] score = importance[l];
                int[] ms = members[l][g];
                int lead = 0;
                for (int i = 1; i < ms.length; i++) if (score[ms[i]] > score[ms[lead]]) lead = i;
                int t = ms[0];
                ms[0] = ms[lead];
                ms[lead] = t;
            }
        }
        ModelFamily family = config.architecture().family();
        ExpertProjections p = family.expertProjections();
        int h = config.hiddenSize();
        int w = config.moe().expertIntermediate();
        try (Checkpoint ck = Checkpoint.open(source)) {
            for (String name : ck.names()) {
                if (name.contains(".mlp.experts.gate_up_proj") || name.contains(".mlp.experts.down_proj")) {
                    throw new IllegalArgumentException("moe merge reads the hub's per-expert layout; " + name + " is transformers v5's fused one");
                }
            }
            for (String name : ck.names()) {
                int[] le = expertOf(family, config, name);
                if (le == null) continue;
                String rest = name.substring(family.expertPrefix(le[0], le[1]).length());
                if (!rest.equals(p.gate()) && !rest.equals(p.up()) && !rest.equals(p.down())) {
                    throw new IllegalArgumentException("moe merge merges float gate/up/down weights only; " + name + " is something else"
                            + " (a quantized checkpoint? merge before quantizing)");
                }
            }
            List<TensorSpec> specs = new ArrayList<>();
            for (String name : new TreeSet<>(ck.names())) {
                if (expertOf(family, config, name) == null) specs.add(TensorSpec.copyOf(name, ck.tensor(name)));
            }
            for (int l = 0; l < config.numLayers(); l++) {
                if (members[l] == null) continue;
                for (int g = 0; g < members[l].length; g++) {
                    specs.addAll(mergedExpert(family, p, ck, l, g, members[l][g], importance[l], h, w, align));
                }
            }
            Files.createDirectories(target);
            ShardedCheckpointWriter.write(target, specs, SHARD_BYTES);
            ShardedCheckpointWriter.copyOtherFiles(source, target);
            ObjectNode out = readConfig(source).deepCopy();
            ArrayNode table = out.putArray("expert_alias");
            for (int l = 0; l < config.numLayers(); l++) {
                if (members[l] == null) {
                    table.addNull();
                } else {
                    ArrayNode row = table.addArray();
                    for (int e : alias[l]) row.add(e);
                }
            }
            MAPPER.writeValue(target.resolve("config.json").toFile(), out);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The merged expert {@code g} of layer {@code l}: its three projections under the merged id. */
    private static List<TensorSpec> mergedExpert(ModelFamily family, ExpertProjections p, Checkpoint ck, int l, int g, int[] group,
                                                 double[] importance, int h, int w, boolean align) {
        String to = family.expertPrefix(l, g);
        if (group.length == 1) {
            String from = family.expertPrefix(l, group[0]);
            return List.of(TensorSpec.copyOf(to + p.gate(), ck.tensor(from + p.gate())),
                    TensorSpec.copyOf(to + p.up(), ck.tensor(from + p.up())),
                    TensorSpec.copyOf(to + p.down(), ck.tensor(from + p.down())));
        }
        double total = 0;
        for (int e : group) total += importance[e];
        float[] gate = new float[w * h];
        float[] up = new float[w * h];
        float[] down = new float[h * w];
        float[][] lead = null;
        Tensor first = null;
        for (int e : group) {
            String from = family.expertPrefix(l, e);
            Tensor gt = ck.tensor(from + p.gate(), w, h);
            Tensor ut = ck.tensor(from + p.up(), w, h);
            Tensor dt = ck.tensor(from + p.down(), h, w);
            float[] eg = gt.toFloatArray();
            float[] eu = ut.toFloatArray();
            float[] ed = dt.toFloatArray();
            int[] perm;
            if (lead == null) {
                lead = new float[][] {eg, eu, ed};
                first = gt;
                perm = identity(w);
            } else {
                perm = align ? align(lead, eg, eu, ed, h, w) : identity(w);
            }
            float share = (float) (total > 0 ? importance[e] / total : 1.0 / group.length);
            for (int r = 0; r < w; r++) {
                int src = perm[r];
                for (int c = 0; c < h; c++) {
                    gate[r * h + c] += share * eg[src * h + c];
                    up[r * h + c] += share * eu[src * h + c];
                }
                for (int c = 0; c < h; c++) down[c * w + r] += share * ed[c * w + src];
            }
        }
        DType dtype = first.dtype();
        return List.of(floats(to + p.gate(), dtype, new long[] {w, h}, gate), floats(to + p.up(), dtype, new long[] {w, h}, up),
                floats(to + p.down(), dtype, new long[] {h, w}, down));
    }

    private static TensorSpec floats(String name, DType dtype, long[] shape, float[] values) {
        return new TensorSpec(name, dtype, shape, target -> {
            for (int i = 0; i < values.length; i++) TensorAccess.setFloat(target, dtype, i, values[i]);
        });
    }

    /**
     * The permutation of the member's intermediate neurons that best matches the leader's: perm[r] is the member's
     * neuron placed at the leader's neuron r, maximising Σ_r ⟨leader neuron r, member neuron perm[r]⟩ where a
     * neuron is its gate row, up row and down column together.
     */
    static int[] align(float[][] lead, float[] gate, float[] up, float[] down, int h, int w) {
        double[][] cost = new double[w][w];
        for (int r = 0; r < w; r++) {
            for (int s = 0; s < w; s++) {
                double dot = 0;
                for (int c = 0; c < h; c++) {
                    dot += (double) lead[0][r * h + c] * gate[s * h + c] + (double) lead[1][r * h + c] * up[s * h + c]
                            + (double) lead[2][c * w + r] * down[c * w + s];
                }
                cost[r][s] = -dot;
            }
        }
        return Assignment.minimumCost(cost);
    }

    private static int[] identity(int w) {
        int[] id = new int[w];
        for (int i = 0; i < w; i++) id[i] = i;
        return id;
    }

    /** {layer, expert} of a routed expert's tensor, or null for any other tensor. */
    private static int[] expertOf(ModelFamily family, ModelConfig config, String name) {
        for (int l = 0; l < config.numLayers(); l++) {
            if (!config.isSparse(l)) continue;
            String experts = family.moePrefix(l) + "experts.";
            if (!name.startsWith(experts)) continue;
            int dot = name.indexOf('.', experts.length());
            if (dot < 0) return null;
            try {
                return new int[] {l, Integer.parseInt(name.substring(experts.length(), dot))};
            } catch (NumberFormatException notAnExpert) {
                return null;
            }
        }
        return null;
    }

    private static void refuseUnsupported(ModelConfig config) {
        Architecture arch = config.architecture();
        if (arch == Architecture.GPT_OSS || arch == Architecture.MOE_PLUS_PLUS) {
            String why = arch == Architecture.GPT_OSS ? "its experts are fused tensors with per-expert biases"
                    : "its gate also routes to zero-computation experts";
            throw new IllegalArgumentException("moe merge does not support " + arch.hfClassName() + ": " + why);
        }
        if (config.moe().expertAlias() != null) {
            throw new IllegalArgumentException("the checkpoint is already merged (its config.json has expert_alias)");
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
