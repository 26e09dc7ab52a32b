package io.moeserve.helm;

import static io.moeserve.helm.Charts.env;
import static io.moeserve.helm.Charts.named;
import static io.moeserve.helm.Charts.ofKind;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.moeserve.planner.cli.PlanCli;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** bin/moe-plan's values file installs as is: the chart renders it, valid, and router and pods agree on it. */
class PlannedValuesTest {
    @TempDir
    Path work;

    @Test
    void aPlanRendersAndTheRouterAndPodsAgree() throws Exception {
        StringBuilder t = new StringBuilder("[");
        for (int l = 0; l < 4; l++) {
            t.append(l == 0 ? "[" : ",[");
            for (int e = 0; e < 16; e++) t.append(e == 0 ? "" : ",").append(1000 / (1 + (e * 7 + l * 3) % 16));
            t.append(']');
        }
        t.append(']');
        Path stats = work.resolve("stats.json");
        Files.writeString(stats, """
                {"schema":"moe-serve.routing-stats.v1","model":"m","routing_table_version":7,"num_layers":4,"num_experts":16,
                 "moe_layers":[0,1,2,3],"since_unix_millis":0,"at_unix_millis":600000,"total_tokens":1,"tokens":%s}""".formatted(t));
        Path plan = work.resolve("plan.yaml");
        assertEquals(0, PlanCli.execute("plan", "--stats", stats.toString(), "--slots-per-group", "4", "--groups", "5",
                "--pod-pairs-per-second", "2", "--gpus-per-pod", "1", "--out", plan.toString()));
        List<JsonNode> docs = Charts.renderDocs(plan);
        List<String> problems = new ArrayList<>();
        for (JsonNode d : docs) problems.addAll(KubeSchemas.problems(d));
        assertEquals(List.of(), problems);
        JsonNode planned = Charts.YAML.readTree(plan.toFile());
        String map = named(docs, "ConfigMap", "moe-moe-serve-expert-map").path("data").path("application.properties").asText();
        assertTrue(map.contains("moe.router.experts.routing-table-version=8\n"), map);
        assertEquals(5, ofKind(docs, "HorizontalPodAutoscaler").size());
        planned.path("expertGroups").fields().forEachRemaining(g -> {
            String hosts = g.getValue().path("hosts").asText();
            assertTrue(map.contains("moe.router.experts.groups." + g.getKey() + ".hosts=" + hosts + "\n"), map);
            JsonNode dep = named(docs, "Deployment", "moe-moe-serve-expert-" + g.getKey());
            JsonNode c = dep.path("spec").path("template").path("spec").path("containers").get(0);
            assertEquals(hosts, env(c, "MOE_EXPERT_HOSTS").path("value").asText());
            assertEquals("8", env(c, "MOE_EXPERT_ROUTING_TABLE_VERSION").path("value").asText());
            assertEquals("1", c.path("resources").path("limits").path("nvidia.com/gpu").asText());
            JsonNode hpa = named(docs, "HorizontalPodAutoscaler", "moe-moe-serve-expert-" + g.getKey()).path("spec");
            assertEquals(g.getValue().path("autoscaling").path("maxReplicas").asInt(), hpa.path("maxReplicas").asInt());
        });
    }
}
