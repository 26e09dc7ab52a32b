package io.moeserve.planner;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * One snapshot of the router's {@code GET /v1/routing-stats} ({@code moe-serve.routing-stats.v1}, see
 * docs/architecture.md): cumulative (token, expert) pair counts per layer since {@code since_unix_millis}.
 *
 * @param router which router took it ({@code router}, host:gRPC port); "" in snapshots from before the field
 * @param tokens {@code tokens[l][e]} for every layer, empty for dense layers
 */
public record RoutingStats(String model, String router, int routingTableVersion, int numLayers, int numExperts, int[] moeLayers,
                           long sinceMillis, long atMillis, long[][] tokens) {
    public static final String SCHEMA = "moe-serve.routing-stats.v1";

    public static RoutingStats read(Path file) {
        try {
            return parse(new ObjectMapper().readTree(file.toFile()), file.toString());
        } catch (IOException e) {
            throw new IllegalArgumentException(file + ": cannot read routing statistics: " + e.getMessage(), e);
        }
    }

    public static RoutingStats parse(JsonNode n, String where) {
        if (!SCHEMA.equals(n.path("schema").asText())) {
            throw new IllegalArgumentException(where + ": field 'schema' must be \"" + SCHEMA + "\", found " + n.path("schema"));
        }
        int layers = required(n, "num_layers", where).asInt();
        int experts = required(n, "num_experts", where).asInt();
        JsonNode moe = required(n, "moe_layers", where);
        int[] moeLayers = new int[moe.size()];
        for (int i = 0; i < moeLayers.length; i++) moeLayers[i] = moe.get(i).asInt();
        JsonNode t = required(n, "tokens", where);
        if (!t.isArray() || t.size() != layers) {
            throw new IllegalArgumentException(where + ": field 'tokens' must hold one list per layer (" + layers + ")");
        }
        long[][] tokens = new long[layers][];
        for (int l = 0; l < layers; l++) {
            JsonNode row = t.get(l);
            boolean sparse = contains(moeLayers, l);
            if (sparse && row.size() != experts) {
                throw new IllegalArgumentException(where + ": tokens[" + l + "] must hold " + experts + " counts (num_experts)");
            }
            if (!sparse && !row.isEmpty()) throw new IllegalArgumentException(where + ": tokens[" + l + "] of a dense layer must be empty");
            tokens[l] = new long[row.size()];
            for (int e = 0; e < row.size(); e++) {
                long v = row.get(e).asLong(-1);
                if (v < 0) throw new IllegalArgumentException(where + ": tokens[" + l + "][" + e + "] must be a count >= 0");
                tokens[l][e] = v;
            }
        }
        long since = required(n, "since_unix_millis", where).asLong();
        long at = required(n, "at_unix_millis", where).asLong();
        if (at <= since) throw new IllegalArgumentException(where + ": at_unix_millis must be after since_unix_millis");
        return new RoutingStats(n.path("model").asText(""), n.path("router").asText(""), n.path("routing_table_version").asInt(0),
                layers, experts,
                moeLayers, since, at, tokens);
    }

    private static JsonNode required(JsonNode n, String field, String where) {
        JsonNode v = n.get(field);
        if (v == null || v.isNull()) throw new IllegalArgumentException(where + ": field '" + field + "' is missing");
        return v;
    }

    private static boolean contains(int[] a, int v) {
        for (int x : a) if (x == v) return true;
        return false;
    }

    /**
     * The load to plan for, in pairs per second, {@code [moe layer index][expert]}: from one snapshot its average
     * rate since the counters started; from several (same model and shape) the exponentially weighted average of the
     * rates between consecutive snapshots, newest weighted most ({@code halfLifeSeconds}), as EPLB's README suggests a
     * moving average of history. A counter that went down (the router restarted) starts a new epoch: that interval's
     * rate is the later snapshot's own average.
     *
     * <p>Several routers (each counts only the tokens it generated): the snapshots are grouped by {@code router}, each
     * router's load computed as above from its own snapshots, and the loads summed, which is the deployment's load when
     * every router that serves traffic now is given (a router that is gone should be left out: its traffic moved to
     * the others, which count it from then on).
     */
    public static double[][] load(List<RoutingStats> snapshots, double halfLifeSeconds) {
        if (snapshots.isEmpty()) throw new IllegalArgumentException("no routing statistics given");
        java.util.Map<String, List<RoutingStats>> byRouter = new java.util.LinkedHashMap<>();
        for (RoutingStats r : snapshots) byRouter.computeIfAbsent(r.router, k -> new ArrayList<>()).add(r);
        if (byRouter.size() == 1) return loadOfOne(snapshots, halfLifeSeconds);
        double[][] sum = null;
        for (List<RoutingStats> one : byRouter.values()) {
            double[][] l = loadOfOne(one, halfLifeSeconds);
            if (sum == null) {
                sum = l;
                continue;
            }
            if (l.length != sum.length || (l.length > 0 && l[0].length != sum[0].length)) {
                throw new IllegalArgumentException("routing statistics of different model shapes cannot be combined");
            }
            for (int i = 0; i < l.length; i++) for (int e = 0; e < l[i].length; e++) sum[i][e] += l[i][e];
        }
        return sum;
    }

    /** {@link #load} of one router's snapshots. */
    private static double[][] loadOfOne(List<RoutingStats> snapshots, double halfLifeSeconds) {
        List<RoutingStats> s = new ArrayList<>(snapshots);
        s.sort(Comparator.comparingLong(RoutingStats::atMillis));
        RoutingStats first = s.getFirst();
        for (RoutingStats r : s) {
            if (r.numExperts != first.numExperts || !java.util.Arrays.equals(r.moeLayers, first.moeLayers)) {
                throw new IllegalArgumentException("routing statistics of different model shapes cannot be combined");
            }
        }
        int layers = first.moeLayers.length, experts = first.numExperts;
        if (s.size() == 1) return rate(first, null);
        double[][] acc = new double[layers][experts];
        double weightSum = 0;
        long newest = s.getLast().atMillis;
        for (int i = 1; i < s.size(); i++) {
            RoutingStats prev = s.get(i - 1), cur = s.get(i);
            boolean reset = cur.sinceMillis != prev.sinceMillis || decreased(prev, cur);
            double[][] r = rate(cur, reset ? null : prev);
            double age = (newest - cur.atMillis) / 1000.0;
            double wt = halfLifeSeconds > 0 ? Math.pow(0.5, age / halfLifeSeconds) : 1.0;
            for (int l = 0; l < layers; l++) for (int e = 0; e < experts; e++) acc[l][e] += wt * r[l][e];
            weightSum += wt;
        }
        for (double[] row : acc) for (int e = 0; e < experts; e++) row[e] /= weightSum;
        return acc;
    }

    private static boolean decreased(RoutingStats a, RoutingStats b) {
        for (int l : a.moeLayers) for (int e = 0; e < a.numExperts; e++) if (b.tokens[l][e] < a.tokens[l][e]) return true;
        return false;
    }

    private static double[][] rate(RoutingStats cur, RoutingStats prev) {
        double seconds = (cur.atMillis - (prev == null ? cur.sinceMillis : prev.atMillis)) / 1000.0;
        double[][] out = new double[cur.moeLayers.length][cur.numExperts];
        if (seconds <= 0) throw new IllegalArgumentException("two routing-statistics snapshots taken at the same time");
        for (int i = 0; i < cur.moeLayers.length; i++) {
            int l = cur.moeLayers[i];
            for (int e = 0; e < cur.numExperts; e++) {
                out[i][e] = (cur.tokens[l][e] - (prev == null ? 0 : prev.tokens[l][e])) / seconds;
            }
        }
        return out;
    }
}
