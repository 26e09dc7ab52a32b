package io.moeserve.planner;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.moeserve.runtime.expert.ExpertSet;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Placement specs (the grammar of docs/architecture.md, parsed by the runtime's {@link ExpertSet}): writing a group's
 * per-layer expert lists as one spec, and reading a previous plan back from a values file.
 */
public final class Specs {
    private Specs() {}

    /**
     * The spec of one group: layers that host the same experts share an entry, entries ordered by their first
     * layer, ids and layers compressed into ranges. Example: layers 0 and 1 hosting {3,4,5,9}, layer 2 hosting {1}
     * gives {@code 0-1:3-5,9;2:1}.
     *
     * @param moeLayers  the model's MoE layer ids, in the placement's layer order
     * @param perLayer   {@code perLayer[i]}: the experts hosted in MoE layer {@code moeLayers[i]}
     */
    public static String spec(int[] moeLayers, int[][] perLayer) {
        Map<String, List<Integer>> byExperts = new LinkedHashMap<>();
        for (int i = 0; i < moeLayers.length; i++) {
            int[] e = Placement.distinct(perLayer[i]).stream().toArray();
            if (e.length == 0) continue;
            byExperts.computeIfAbsent(ranges(e), k -> new ArrayList<>()).add(moeLayers[i]);
        }
        if (byExperts.isEmpty()) throw new IllegalArgumentException("a group must host at least one expert");
        StringBuilder sb = new StringBuilder();
        for (Map.Entry<String, List<Integer>> en : byExperts.entrySet()) {
            if (!sb.isEmpty()) sb.append(';');
            sb.append(ranges(en.getValue().stream().mapToInt(Integer::intValue).toArray())).append(':').append(en.getKey());
        }
        return sb.toString();
    }

    /** Sorted distinct ids as {@code a-b,c}. */
    static String ranges(int[] ids) {
        int[] s = Arrays.stream(ids).distinct().sorted().toArray();
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < s.length; ) {
            int j = i;
            while (j + 1 < s.length && s[j + 1] == s[j] + 1) j++;
            if (!sb.isEmpty()) sb.append(',');
            sb.append(s[i]);
            if (j > i) sb.append('-').append(s[j]);
            i = j + 1;
        }
        return sb.toString();
    }

    /** A previous plan read from a values file's {@code expertGroups}, groups in name order (as Helm renders them). */
    public record PreviousPlan(List<String> names, Placement placement, int routingTableVersion) {}

    public static PreviousPlan readValues(Path values, int[] moeLayers, int numExperts) {
        JsonNode root;
        try {
            root = new ObjectMapper(new YAMLFactory()).readTree(values.toFile());
        } catch (IOException e) {
            throw new IllegalArgumentException(values + ": cannot read the previous plan: " + e.getMessage(), e);
        }
        JsonNode groups = root == null ? null : root.get("expertGroups");
        if (groups == null || !groups.isObject() || groups.isEmpty()) {
            throw new IllegalArgumentException(values + ": no 'expertGroups' map in the previous plan");
        }
        TreeMap<String, ExpertSet> sets = new TreeMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = groups.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> g = it.next();
            String hosts = g.getValue().path("hosts").asText("");
            try {
                sets.put(g.getKey(), ExpertSet.parse(hosts));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(values + ": expertGroups." + g.getKey() + ".hosts: " + e.getMessage(), e);
            }
        }
        List<String> names = new ArrayList<>(sets.keySet());
        int[][][] p = new int[moeLayers.length][names.size()][];
        for (int i = 0; i < moeLayers.length; i++) {
            for (int g = 0; g < names.size(); g++) {
                ExpertSet set = sets.get(names.get(g));
                int layer = moeLayers[i];
                p[i][g] = java.util.stream.IntStream.range(0, numExperts).filter(e -> set.hosts(layer, e)).toArray();
            }
        }
        return new PreviousPlan(names, new Placement(p), root.path("routingTableVersion").asInt(0));
    }
}
