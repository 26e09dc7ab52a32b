package io.moeserve.helm;

import static io.moeserve.helm.Charts.named;
import static io.moeserve.helm.Charts.ofKind;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The PromQL that will run, checked by promtool. promtool checks Prometheus rule files, not adapter configs, so
 * every adapter rule's metricsQuery is expanded the way prometheus-adapter expands it for an HPA (the series name,
 * namespace and pod label matchers, grouping by pod) and every KEDA trigger query is taken as rendered; each becomes
 * a recording rule in a rules file that {@code promtool check rules} parses and checks.
 */
class PromQlTest {
    @TempDir
    Path work;

    @Test
    void adapterRulesConfigMapIsTheStandaloneFile() throws Exception {
        List<JsonNode> docs = Charts.renderDocs(Charts.example("hpa"));
        String inChart = named(docs, "ConfigMap", "moe-moe-serve-adapter-rules").path("data").path("config.yaml").asText();
        String file = Files.readString(Charts.chart().resolve("files/prometheus-adapter-rules.yaml"));
        assertEquals(file.strip(), inChart.strip());
        // every metric name an HPA asks for is one the adapter serves
        JsonNode rules = Charts.YAML.readTree(file).path("rules");
        List<String> served = new ArrayList<>();
        rules.forEach(r -> served.add(r.path("name").path("as").asText()));
        for (JsonNode hpa : ofKind(docs, "HorizontalPodAutoscaler")) {
            String m = hpa.path("spec").path("metrics").get(0).path("pods").path("metric").path("name").asText();
            assertTrue(served.contains(m), m + " served by the adapter rules " + served);
        }
    }

    @Test
    void everyQueryPassesPromtool() throws Exception {
        List<String> exprs = new ArrayList<>();
        JsonNode rules = Charts.YAML.readTree(Charts.chart().resolve("files/prometheus-adapter-rules.yaml").toFile()).path("rules");
        for (JsonNode r : rules) exprs.add(expand(r));
        for (String example : List.of("keda", "many-groups")) {
            Path values = example.equals("keda") ? Charts.example("keda") : null;
            List<JsonNode> docs = Charts.renderDocs(values);
            if (values == null) docs = Charts.documents(Charts.render(Charts.example("many-groups"), java.util.Map.of("autoscaling.engine", "keda")));
            for (JsonNode so : ofKind(docs,
                    "ScaledObject")) exprs.add(so.path("spec").path("triggers").get(0).path("metadata").path("query").asText());
        }
        assertTrue(exprs.size() >= 4 + 3 + 16, "queries: " + exprs.size());
        Tools.Result r = Tools.promtoolCheckRules(rulesFile(exprs, "ok.yaml"));
        assertEquals(0, r.exitCode(), r.output());
        assertTrue(r.output().contains("SUCCESS: " + exprs.size() + " rules found"), r.output());
    }

    @Test
    void promtoolRefusesABrokenQuery() throws Exception {
        Tools.Result r = Tools.promtoolCheckRules(rulesFile(List.of("sum(rate(moe_expert_pod_tokens_total{group=\"g0\"}[1m])) by (pod"), "bad.yaml"));
        assertNotEquals(0, r.exitCode(), r.output());
    }

    /** The adapter's expansion for an HPA on pods p1, p2 of namespace serving. */
    static String expand(JsonNode rule) {
        Matcher m = Pattern.compile("^([a-zA-Z_:][a-zA-Z0-9_:]*)").matcher(rule.path("seriesQuery").asText());
        assertTrue(m.find(), "series name in " + rule.path("seriesQuery"));
        String q = rule.path("metricsQuery").asText();
        q = q.replace("<<.Series>>", m.group(1)).replace("<<.LabelMatchers>>", "namespace=\"serving\",pod=~\"p1|p2\"").replace("<<.GroupBy>>", "pod");
        assertTrue(!q.contains("<<"), "unexpanded template in " + q);
        return q;
    }

    private Path rulesFile(List<String> exprs, String name) throws Exception {
        StringBuilder sb = new StringBuilder("groups:\n  - name: moe-serve-queries\n    rules:\n");
        for (int i = 0; i < exprs.size(); i++) {
            sb.append("      - record: moe:query_check:").append(i).append('\n');
            sb.append("        expr: ").append(Charts.JSON.writeValueAsString(exprs.get(i))).append('\n');
        }
        Path f = work.resolve(name);
        Files.writeString(f, sb.toString());
        return f;
    }
}
