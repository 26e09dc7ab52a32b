package io.moeserve.system;

import com.fasterxml.jackson.databind.JsonNode;
import io.moeserve.helm.Charts;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The PromQL the autoscalers run for each expert group, taken from the chart as the Helm engine renders it (release
 * {@link Charts#RELEASE}, namespace {@link Charts#NAMESPACE}): for the HPA engine, the adapter rule serving the metric
 * the group's HPA asks for, expanded the way prometheus-adapter expands it for that HPA (the series, the namespace and
 * the pods of the group's Deployment, grouped by pod; the HPA then averages over the pods); for the KEDA engine, the
 * ScaledObject's trigger query (one value per group).
 */
final class AutoscalerQueries {
    /** The queries of one metric (the chart's autoscaling.metric) for one group. */
    record Group(String deployment, String hpaMetric, String hpaQueryTemplate, String kedaQuery, double target) {
        /** The adapter's query for an HPA whose Deployment has these pods. */
        String hpaQuery(List<String> pods) {
            return hpaQueryTemplate.replace("<<.LabelMatchers>>", "namespace=\"" + Charts.NAMESPACE + "\",pod=~\"" + String.join("|", pods) + "\"")
                    .replace("<<.GroupBy>>", "pod");
        }
    }

    private AutoscalerQueries() {}

    /**
     * Renders the chart with these groups (name to placement spec), the metric and its target (null: the chart's
     * default); the queries per group.
     */
    static Map<String, Group> render(Path work, Map<String, String> groups, String metric, Double target) {
        Map<String, Group> out = new LinkedHashMap<>();
        List<JsonNode> hpa = Charts.renderDocs(values(work, groups, metric, target, "hpa"));
        List<JsonNode> keda = Charts.renderDocs(values(work, groups, metric, target, "keda"));
        JsonNode rules = adapterRules(hpa);
        for (String g : groups.keySet()) {
            JsonNode h = hpa.stream().filter(d -> "HorizontalPodAutoscaler".equals(d.path("kind").asText())
                    && g.equals(d.path("metadata").path("labels").path("moe-serve.io/expert-group").asText())).findFirst()
                    .orElseThrow(() -> new AssertionError("the chart renders no HPA for group " + g));
            String deployment = h.path("spec").path("scaleTargetRef").path("name").asText();
            JsonNode m = h.path("spec").path("metrics").get(0).path("pods");
            String name = m.path("metric").path("name").asText();
            JsonNode rule = null;
            for (JsonNode r : rules) if (name.equals(r.path("name").path("as").asText())) rule = r;
            if (rule == null) throw new AssertionError("no adapter rule serves " + name);
            Matcher series = Pattern.compile("^([a-zA-Z_:][a-zA-Z0-9_:]*)").matcher(rule.path("seriesQuery").asText());
            if (!series.find()) throw new AssertionError("no series name in " + rule.path("seriesQuery"));
            String template = rule.path("metricsQuery").asText().replace("<<.Series>>", series.group(1));
            JsonNode so = Charts.named(keda, "ScaledObject", deployment);
            String kedaQuery = so.path("spec").path("triggers").get(0).path("metadata").path("query").asText();
            double hpaTarget = quantity(m.path("target").path("averageValue").asText());
            out.put(g, new Group(deployment, name, template, kedaQuery, hpaTarget));
        }
        return out;
    }

    private static Path values(Path work, Map<String, String> groups, String metric, Double target, String engine) {
        StringBuilder y = new StringBuilder("autoscaling:\n  engine: " + engine + "\nexpertDefaults:\n  autoscaling:\n    metric: " + metric + "\n");
        if (target != null) y.append("    target: ").append(target).append('\n');
        y.append("expertGroups:\n");
        groups.forEach((g, hosts) -> y.append("  ").append(g).append(":\n    hosts: \"").append(hosts).append("\"\n"));
        try {
            Path f = work.resolve("values-" + metric + "-" + engine + ".yaml");
            Files.writeString(f, y);
            return f;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static JsonNode adapterRules(List<JsonNode> docs) {
        for (JsonNode cm : Charts.ofKind(docs, "ConfigMap")) {
            if (cm.path("metadata").path("name").asText().endsWith("-adapter-rules")) {
                try {
                    return Charts.YAML.readTree(cm.path("data").path("config.yaml").asText()).path("rules");
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }
        }
        throw new AssertionError("the chart renders no prometheus-adapter rules ConfigMap");
    }

    /** A Kubernetes quantity as the HPA target: "600m" is 0.6. */
    private static double quantity(String q) {
        return q.endsWith("m") ? Double.parseDouble(q.substring(0, q.length() - 1)) / 1000 : Double.parseDouble(q);
    }
}
