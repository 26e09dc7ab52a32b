package io.moeserve.planner;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import com.fasterxml.jackson.dataformat.yaml.YAMLGenerator;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A plan as the chart's values: {@code routingTableVersion} and {@code expertGroups.<name>} with {@code hosts},
 * {@code replicas} and the autoscaling bounds, plus the GPU count when pods use GPUs. Everything else a group needs
 * comes from the chart's {@code expertDefaults}, so this file is layered on top of the operator's own values
 * ({@code helm upgrade -f values.yaml -f plan.yaml}).
 *
 * <p>Replicas. A group's load (pairs/s, all layers) ÷ what one pod computes at the autoscaling target gives the
 * replicas for the load planned for; the autoscaling bounds bracket it ({@code minFactor}, {@code maxFactor}, never
 * below 1, never above {@code maxReplicasPerGroup}). Without a pod capacity every group gets {@code replicas}
 * (the planner then only decides what each group hosts).
 */
public final class PlanValues {
    /**
     * @param podPairsPerSecond   pairs/s one pod computes at the autoscaling target (0 = unknown)
     * @param defaultReplicas     replicas when the pod capacity is unknown
     * @param gpusPerPod          nvidia.com/gpu per pod (0 = CPU pods: no resources written)
     * @param maxPods             most pods in all (the replicas allowed); 0 = no limit
     */
    public record Sizing(double podPairsPerSecond, int defaultReplicas, double minFactor, double maxFactor,
                         int maxReplicasPerGroup, int gpusPerPod, int maxPods) {}

    public record Group(String name, String hosts, double load, int replicas, int minReplicas, int maxReplicas) {}

    private PlanValues() {}

    public static List<Group> groups(Placement plan, double[][] weight, int[] moeLayers, List<String> names, Sizing s) {
        double[][] loads = plan.loads(weight);
        List<Group> out = new ArrayList<>();
        int total = 0;
        for (int g = 0; g < plan.groups(); g++) {
            int[][] perLayer = new int[plan.layers()][];
            for (int l = 0; l < plan.layers(); l++) perLayer[l] = plan.experts()[l][g];
            double load = 0;
            for (double[] layer : loads) load += layer[g];
            int replicas = s.podPairsPerSecond() > 0 ? Math.max(1, (int) Math.ceil(load / s.podPairsPerSecond())) : s.defaultReplicas();
            if (replicas > s.maxReplicasPerGroup()) {
                throw new IllegalArgumentException("group " + names.get(g) + " needs " + replicas
                        + " replicas for the planned load, more than --max-replicas-per-group " + s.maxReplicasPerGroup());
            }
            int min = Math.max(1, (int) Math.ceil(replicas * s.minFactor()));
            int max = Math.min(s.maxReplicasPerGroup(), Math.max(replicas, (int) Math.ceil(replicas * s.maxFactor())));
            out.add(new Group(names.get(g), Specs.spec(moeLayers, perLayer), load, replicas, Math.min(min, replicas), max));
            total += replicas;
        }
        if (s.maxPods() > 0 && total > s.maxPods()) {
            throw new IllegalArgumentException("the planned load needs " + total + " expert pods, more than --max-pods "
                    + s.maxPods() + " allows (raise it, lower the load, or give pods more capacity)");
        }
        return out;
    }

    public static String yaml(List<Group> groups, int routingTableVersion, Sizing s, List<String> header) {
        Map<String, Object> root = new LinkedHashMap<>();
        root.put("routingTableVersion", routingTableVersion);
        Map<String, Object> eg = new LinkedHashMap<>();
        for (Group g : groups) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("hosts", g.hosts());
            m.put("replicas", g.replicas());
            Map<String, Object> as = new LinkedHashMap<>();
            as.put("minReplicas", g.minReplicas());
            as.put("maxReplicas", g.maxReplicas());
            m.put("autoscaling", as);
            if (s.gpusPerPod() > 0) {
                Map<String, Object> gpu = Map.of("nvidia.com/gpu", s.gpusPerPod());
                m.put("resources", new LinkedHashMap<>(Map.of("requests", gpu, "limits", gpu)));
            }
            eg.put(g.name(), m);
        }
        root.put("expertGroups", eg);
        ObjectMapper mapper = new ObjectMapper(new YAMLFactory()
                .disable(YAMLGenerator.Feature.WRITE_DOC_START_MARKER)
                .enable(YAMLGenerator.Feature.MINIMIZE_QUOTES)
                .enable(YAMLGenerator.Feature.ALWAYS_QUOTE_NUMBERS_AS_STRINGS));
        StringBuilder sb = new StringBuilder();
        for (String h : header) sb.append("# ").append(h).append('\n');
        try {
            return sb + mapper.writeValueAsString(root);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
