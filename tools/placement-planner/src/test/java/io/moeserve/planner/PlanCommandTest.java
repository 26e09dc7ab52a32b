package io.moeserve.planner;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import io.moeserve.planner.cli.PlanCli;
import io.moeserve.runtime.expert.ExpertSet;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The plan command end to end: routing-stats snapshots in, a values file the chart and the pods accept out. */
class PlanCommandTest {
    @TempDir
    Path dir;

    /** Layer 0 dense, layers 1-3 MoE with 8 experts; expert 5 hot. */
    private Path stats(String name, long at, int scale) throws IOException {
        StringBuilder t = new StringBuilder("[[]");
        for (int l = 1; l < 4; l++) {
            t.append(",[");
            for (int e = 0; e < 8; e++) t.append(e == 0 ? "" : ",").append(scale * (e == 5 ? 900 : 50 + 10 * e + l));
            t.append(']');
        }
        t.append(']');
        Path p = dir.resolve(name);
        Files.writeString(p, """
                {"schema":"moe-serve.routing-stats.v1","model":"tiny","routing_table_version":3,"num_layers":4,
                 "num_experts":8,"moe_layers":[1,2,3],"since_unix_millis":1000,"at_unix_millis":%d,
                 "total_tokens":1,"tokens":%s}""".formatted(at, t));
        return p;
    }

    @Test
    void plansReplansAndDraws() throws IOException {
        Path a = stats("a.json", 61_000, 1), b = stats("b.json", 121_000, 2);
        Path out = dir.resolve("plan.yaml");
        int rc = PlanCli.execute("plan", "--stats", a.toString(), "--stats", b.toString(), "--slots-per-group", "3",
                "--groups", "4", "--pod-pairs-per-second", "10", "--out", out.toString());
        assertEquals(0, rc);
        JsonNode v = new ObjectMapper(new YAMLFactory()).readTree(out.toFile());
        assertEquals(4, v.get("routingTableVersion").asInt(), "one past the router's table");
        JsonNode groups = v.get("expertGroups");
        assertEquals(4, groups.size());
        boolean[][] hosted = new boolean[4][8];
        int hotHosts = 0;
        for (Iterator<Map.Entry<String, JsonNode>> it = groups.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> g = it.next();
            assertTrue(g.getKey().matches("g\\d\\d"));
            ExpertSet set = ExpertSet.parse(g.getValue().get("hosts").asText());
            assertTrue(!set.hosts(0, 0), "dense layer 0 hosts nothing");
            for (int l = 1; l < 4; l++) for (int e = 0; e < 8; e++) hosted[l][e] |= set.hosts(l, e);
            if (set.hosts(1, 5)) hotHosts++;
            int replicas = g.getValue().get("replicas").asInt();
            JsonNode as = g.getValue().get("autoscaling");
            assertTrue(as.get("minReplicas").asInt() <= replicas && replicas <= as.get("maxReplicas").asInt());
        }
        for (int l = 1; l < 4; l++) for (int e = 0; e < 8; e++) assertTrue(hosted[l][e], "layer " + l + " expert " + e + " hosted");
        assertTrue(hotHosts >= 2, "the hot expert is replicated into several groups");
        String svg = Files.readString(dir.resolve("plan.svg"));
        assertTrue(svg.startsWith("<svg") && svg.contains("L3") && svg.contains("×"), "heatmap with layer labels and replica marks");
        JsonNode summary = new ObjectMapper().readTree(dir.resolve("plan.json").toFile());
        assertTrue(summary.get("imbalance").asDouble() <= summary.get("eplb_imbalance").asDouble() + 1e-9);

        // replan from the same load: nothing moves and the table version stays
        Path again = dir.resolve("again.yaml");
        assertEquals(0, PlanCli.execute("plan", "--stats", a.toString(), "--stats", b.toString(), "--slots-per-group", "3",
                "--groups", "4", "--pod-pairs-per-second", "10", "--previous", out.toString(), "--out", again.toString()));
        JsonNode v2 = new ObjectMapper(new YAMLFactory()).readTree(again.toFile());
        assertEquals(0, new ObjectMapper().readTree(dir.resolve("again.json").toFile()).get("moves").asInt());
        assertEquals(4, v2.get("routingTableVersion").asInt());
        assertEquals(groups, v2.get("expertGroups"));
    }

    @Test
    void sizesGroupsFromPodMemoryAndNamesTheProblem() throws IOException {
        Path a = stats("a.json", 61_000, 1);
        Path out = dir.resolve("m.yaml");
        // 3 MoE layers x 1000 bytes per expert: 6000 bytes hold 2 experts of every layer
        assertEquals(0, PlanCli.execute("plan", "--stats", a.toString(), "--bytes-per-expert", "1000",
                "--pod-expert-memory", "6000", "--out", out.toString()));
        JsonNode summary = new ObjectMapper().readTree(dir.resolve("m.json").toFile());
        assertEquals(2, summary.get("slots_per_group").asInt());
        assertEquals(5, summary.get("groups").asInt(), "ceil(8 x 1.25 / 2)");
        assertNotEquals(0, PlanCli.execute("plan", "--stats", a.toString(), "--bytes-per-expert", "1000",
                "--pod-expert-memory", "2Ki", "--out", out.toString()), "2 KiB holds no expert of every layer");
    }

    @Test
    void rejectsStatisticsOfAnotherSchema() throws IOException {
        Path bad = dir.resolve("bad.json");
        Files.writeString(bad, "{\"schema\":\"something-else\"}");
        assertNotEquals(0, PlanCli.execute("plan", "--stats", bad.toString(), "--slots-per-group", "2", "--out", dir.resolve("x.yaml").toString()));
    }
}
