package io.moeserve.planner.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.moeserve.planner.Heatmap;
import io.moeserve.planner.Placement;
import io.moeserve.planner.PlanValues;
import io.moeserve.planner.RoutingStats;
import io.moeserve.planner.Specs;
import io.moeserve.planner.StablePlanner;
import io.moeserve.runtime.checkpoint.QuantizationConfig;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.family.ExpertProjections;
import io.moeserve.runtime.family.ModelFamily;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "plan", mixinStandardHelpOptions = true,
        description = {"Reads routing-statistics snapshots and the capacity available and writes the expert groups",
                "and their replica counts as a Helm values file, a heatmap of the load (SVG) and a summary (JSON)."})
final class PlanCommand implements Callable<Integer> {
    @Option(names = "--stats", required = true, paramLabel = "FILE",
            description = "a GET /v1/routing-stats snapshot; repeat for several (the rates between them are averaged)")
    List<Path> stats;

    @Option(names = "--half-life", defaultValue = "3600", paramLabel = "SECONDS",
            description = "weight of older intervals halves every this many seconds (0: plain mean); default ${DEFAULT-VALUE}")
    double halfLife;

    @Option(names = "--model-config", paramLabel = "DIR", description = "checkpoint directory: bytes per expert from its config.json")
    Path modelDir;

    @Option(names = "--bytes-per-expert", paramLabel = "BYTES", description = "instead of --model-config: 3 × hidden × intermediate × dtype bytes")
    Long bytesPerExpert;

    @Option(names = "--pod-expert-memory", paramLabel = "SIZE",
            description = "memory a pod has for expert weights: host memory for CPU pods, GPU memory x GPUs for GPU pods, "
                    + "less what the runtime needs (e.g. 24Gi, 80G, 512Mi)")
    String podMemory;

    @Option(names = "--slots-per-group", paramLabel = "N", description = "experts per MoE layer a pod holds (instead of memory)")
    Integer slotsPerGroup;

    @Option(names = "--groups", paramLabel = "N", description = "expert groups (Deployments); default: enough for the experts plus --redundancy")
    Integer groups;

    @Option(names = "--redundancy", defaultValue = "0.25", paramLabel = "FRACTION",
            description = "spare slots for replicating hot experts, as a fraction of the experts (when --groups is not given); "
                    + "default ${DEFAULT-VALUE}")
    double redundancy;

    @Option(names = "--eplb-groups", defaultValue = "1", description = "EPLB's expert groups (group-limited routing); default ${DEFAULT-VALUE}")
    int eplbGroups;

    @Option(names = "--nodes", defaultValue = "1", description = "EPLB's nodes; default ${DEFAULT-VALUE}")
    int nodes;

    @Option(names = "--algorithm", defaultValue = "stable", description = "stable (migration-aware, default) or eplb (from scratch)")
    String algorithm;

    @Option(names = "--slack", defaultValue = "0",
            description = "accepted excess of the largest group load over EPLB's (fraction); default ${DEFAULT-VALUE}")
    double slack;

    @Option(names = "--previous", paramLabel = "VALUES", description = "the previous plan's values file: keep moves from it small")
    Path previous;

    @Option(names = "--pod-pairs-per-second", defaultValue = "0", paramLabel = "RATE",
            description = "(token, expert) pairs/s one pod computes at the autoscaling target; sets replicas from the load")
    double podRate;

    @Option(names = "--replicas", defaultValue = "1",
            description = "replicas per group when --pod-pairs-per-second is not given; default ${DEFAULT-VALUE}")
    int replicas;

    @Option(names = "--min-factor", defaultValue = "0.5", description = "autoscaling minReplicas = replicas × this; default ${DEFAULT-VALUE}")
    double minFactor;

    @Option(names = "--max-factor", defaultValue = "3", description = "autoscaling maxReplicas = replicas × this; default ${DEFAULT-VALUE}")
    double maxFactor;

    @Option(names = "--max-replicas-per-group", defaultValue = "64", description = "default ${DEFAULT-VALUE}")
    int maxReplicasPerGroup;

    @Option(names = "--max-pods", defaultValue = "0", description = "most expert pods in all for the planned load (0: no limit)")
    int maxPods;

    @Option(names = "--gpus-per-pod", defaultValue = "0", description = "nvidia.com/gpu per pod, written into the groups' resources")
    int gpusPerPod;

    @Option(names = {"-o", "--out"}, required = true, paramLabel = "VALUES", description = "the values file to write")
    Path out;

    @Option(names = "--heatmap", paramLabel = "SVG", description = "where to draw the load heatmap (default: beside --out, .svg)")
    Path heatmap;

    @Option(names = "--summary", paramLabel = "JSON", description = "where to write the summary (default: beside --out, .json)")
    Path summary;

    @Override
    public Integer call() throws IOException {
        List<RoutingStats> snapshots = new ArrayList<>();
        for (Path p : stats) snapshots.add(RoutingStats.read(p));
        RoutingStats last = snapshots.stream().max((a, b) -> Long.compare(a.atMillis(), b.atMillis())).orElseThrow();
        double[][] load = RoutingStats.load(snapshots, halfLife);
        int[] moeLayers = last.moeLayers();
        int experts = last.numExperts();
        int slots = slots(moeLayers.length, experts);
        int g = groups != null ? groups : Math.max(1, (int) Math.ceil(experts * (1 + redundancy) / slots));
        if ((long) g * slots < experts) {
            throw new IllegalArgumentException(g + " groups × " + slots + " slots cannot host " + experts + " experts per layer");
        }
        Specs.PreviousPlan prev = previous == null ? null : Specs.readValues(previous, moeLayers, experts);
        StablePlanner.Options opts = new StablePlanner.Options(g * slots, eplbGroups, nodes, g, slack, 4 * g * slots);
        StablePlanner.Outcome outcome = StablePlanner.plan(load, opts, prev == null ? null : prev.placement());
        Placement plan = switch (algorithm) {
            case "stable" -> outcome.placement();
            case "eplb" -> outcome.eplb();
            default -> throw new IllegalArgumentException("--algorithm must be stable or eplb, not " + algorithm);
        };
        plan.checkCoverage(experts);
        List<String> names = names(g, prev);
        PlanValues.Sizing sizing = new PlanValues.Sizing(podRate, replicas, minFactor, maxFactor, maxReplicasPerGroup, gpusPerPod, maxPods);
        List<PlanValues.Group> planned = PlanValues.groups(plan, load, moeLayers, names, sizing);
        int moves = prev == null ? plan.movesFrom(null) : plan.movesFrom(prev.placement());
        int changed = prev == null ? plan.groups() : plan.groupsChangedFrom(prev.placement());
        int baseVersion = Math.max(last.routingTableVersion(), prev == null ? 0 : prev.routingTableVersion());
        int version = prev != null && changed == 0 && planned.size() == prev.names().size() ? baseVersion : baseVersion + 1;
        double eplbImb = outcome.eplb().imbalance(load), imb = plan.imbalance(load);
        List<String> header = List.of(
                "Expert placement planned by moe-plan (" + algorithm + ") for model '" + last.model() + "'",
                String.format(Locale.ROOT, "from %d routing-stats snapshot(s), newest at %d ms; %d MoE layers x %d experts",
                        snapshots.size(), last.atMillis(), moeLayers.length, experts),
                String.format(Locale.ROOT, "%d groups x %d experts per layer; max/mean group load %.4f (EPLB from scratch %.4f)", g, slots, imb,
                        eplbImb),
                prev == null ? "first plan" : String.format(Locale.ROOT,
                        "%d (layer, expert) loads onto groups since %s (EPLB from scratch: %d); %d group(s) change",
                        moves, previous.getFileName(), outcome.eplb().movesFrom(prev.placement()), changed),
                "Layer it over your values: helm upgrade RELEASE helm/moe-serve -f values.yaml -f " + out.getFileName());
        if (out.toAbsolutePath().getParent() != null) Files.createDirectories(out.toAbsolutePath().getParent());
        Files.writeString(out, PlanValues.yaml(planned, version, sizing, header));
        Path svg = heatmap != null ? heatmap : sibling(out, ".svg");
        Files.writeString(svg, Heatmap.svg(load, moeLayers, plan, names,
                "Expert load of '" + last.model() + "' and the planned groups (routing table " + version + ")"));
        Path json = summary != null ? summary : sibling(out, ".json");
        Map<String, Object> sum = new LinkedHashMap<>();
        sum.put("schema", "moe-serve.placement-plan.v1");
        sum.put("model", last.model());
        sum.put("routing_table_version", version);
        sum.put("algorithm", algorithm);
        sum.put("groups", g);
        sum.put("slots_per_group", slots);
        sum.put("imbalance", imb);
        sum.put("eplb_imbalance", eplbImb);
        sum.put("moves", moves);
        sum.put("eplb_moves", prev == null ? moves : outcome.eplb().movesFrom(prev.placement()));
        sum.put("groups_changed", changed);
        List<Map<String, Object>> gl = new ArrayList<>();
        for (PlanValues.Group p : planned) {
            gl.add(new LinkedHashMap<>(Map.of("name", p.name(), "hosts", p.hosts(), "load_pairs_per_second", p.load(),
                    "replicas", p.replicas(), "min_replicas", p.minReplicas(), "max_replicas", p.maxReplicas())));
        }
        sum.put("expert_groups", gl);
        Files.writeString(json, new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(sum) + "\n");
        System.out.printf(Locale.ROOT, "wrote %s (%d groups, routing table %d), %s, %s%n", out, g, version, svg, json);
        System.out.printf(Locale.ROOT, "max/mean group load %.4f (EPLB %.4f); moves %d; groups changed %d%n", imb, eplbImb, moves, changed);
        return 0;
    }

    private int slots(int moeLayers, int experts) {
        if (slotsPerGroup != null) {
            if (slotsPerGroup <= 0) throw new IllegalArgumentException("--slots-per-group must be positive");
            return Math.min(slotsPerGroup, experts);
        }
        if (podMemory == null) {
            throw new IllegalArgumentException("give --slots-per-group, or --pod-expert-memory with --model-config or --bytes-per-expert");
        }
        long perExpert = bytesPerExpert != null ? bytesPerExpert : expertBytes(modelDir);
        long perLayerSlot = perExpert * moeLayers;
        long mem = parseSize(podMemory);
        int s = (int) Math.min(experts, mem / perLayerSlot);
        if (s < 1) {
            throw new IllegalArgumentException(String.format(Locale.ROOT,
                    "--pod-expert-memory %s holds no expert of every layer (%d bytes per expert × %d MoE layers)", podMemory, perExpert, moeLayers));
        }
        return s;
    }

    /**
     * The bytes of one routed expert's gate, up and down projections, as the checkpoint stores them: hidden ×
     * expert intermediate weights each, at the dtype's size, or, in a quantized checkpoint, its codes, scales and
     * zero points (quantization_config).
     */
    static long expertBytes(Path dir) {
        if (dir == null) throw new IllegalArgumentException("--pod-expert-memory needs --model-config or --bytes-per-expert");
        ModelConfig cfg = ConfigParser.load(dir);
        int dtype = 2;
        try {
            JsonNode n = new ObjectMapper().readTree(dir.resolve("config.json").toFile());
            String t = n.path("torch_dtype").asText(n.path("dtype").asText("bfloat16"));
            dtype = switch (t) {
                case "float32" -> 4;
                case "float16", "bfloat16" -> 2;
                case "float8_e4m3fn", "float8_e5m2" -> 1;
                default -> throw new IllegalArgumentException(dir.resolve("config.json") + ": unknown torch_dtype '" + t + "'");
            };
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        QuantizationConfig q = QuantizationConfig.read(dir);
        int layer = 0;
        while (!cfg.isSparse(layer)) layer++;
        ModelFamily family = cfg.architecture().family();
        ExpertProjections p = family.expertProjections();
        String prefix = family.expertPrefix(layer, 0);
        int h = cfg.hiddenSize(), w = cfg.moe().expertIntermediate();
        long up = p.fusedGateUp() ? q.storedBytes(module(prefix + p.up()), 2 * w, h, dtype)
                : q.storedBytes(module(prefix + p.gate()), w, h, dtype) + q.storedBytes(module(prefix + p.up()), w, h, dtype);
        return up + q.storedBytes(module(prefix + p.down()), h, w, dtype);
    }

    /** The module a weight belongs to: its name without {@code .weight} (gpt-oss's fused experts have none). */
    private static String module(String weightName) {
        return weightName.endsWith(".weight") ? weightName.substring(0, weightName.length() - ".weight".length()) : weightName;
    }

    private static final Pattern SIZE = Pattern.compile("(\\d+(?:\\.\\d+)?)\\s*(Ki|Mi|Gi|Ti|K|M|G|T|k)?B?");

    static long parseSize(String s) {
        Matcher m = SIZE.matcher(s.trim());
        if (!m.matches()) throw new IllegalArgumentException("'" + s + "' is not a size (e.g. 24Gi, 80G, 512Mi)");
        double v = Double.parseDouble(m.group(1));
        String u = m.group(2) == null ? "" : m.group(2);
        double f = switch (u) {
            case "Ki" -> 1024.0;
            case "Mi" -> 1024.0 * 1024;
            case "Gi" -> 1024.0 * 1024 * 1024;
            case "Ti" -> 1024.0 * 1024 * 1024 * 1024;
            case "K", "k" -> 1e3;
            case "M" -> 1e6;
            case "G" -> 1e9;
            case "T" -> 1e12;
            default -> 1;
        };
        return (long) (v * f);
    }

    private static List<String> names(int g, Specs.PreviousPlan prev) {
        List<String> names = new ArrayList<>();
        for (int i = 0; i < g; i++) {
            if (prev != null && i < prev.names().size()) {
                names.add(prev.names().get(i));
                continue;
            }
            int n = i;
            String name;
            do name = String.format(Locale.ROOT, "g%02d", n++); while (names.contains(name) || (prev != null && prev.names().contains(name)));
            names.add(name);
        }
        return names;
    }

    private static Path sibling(Path p, String ext) {
        String f = p.getFileName().toString();
        int dot = f.lastIndexOf('.');
        return p.resolveSibling((dot > 0 ? f.substring(0, dot) : f) + ext);
    }
}
