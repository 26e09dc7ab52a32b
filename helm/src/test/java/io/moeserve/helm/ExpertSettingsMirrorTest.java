package io.moeserve.helm;

import static io.moeserve.helm.Charts.named;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The chart mirrors the expert pods' settings (expert-service's {@code ExpertPodSettings}, a Quarkus
 * {@code @ConfigMapping}): every {@code MOE_EXPERT_*} variable it renders is one of them under Quarkus' environment
 * name, every quantization the pods accept passes the schema, and the chart's defaults are the pods'. The settings
 * are read from the source, which this module does not otherwise depend on.
 */
class ExpertSettingsMirrorTest {
    static final Path SETTINGS = Charts.helmDir().getParent()
            .resolve("expert-service/src/main/java/io/moeserve/expert/ExpertPodSettings.java");

    @Test
    void everyExpertVariableTheChartRendersIsAPodSetting() throws Exception {
        Set<String> pod = new TreeSet<>();
        Matcher m = Pattern.compile("(?m)^\\s+[\\w<>]+\\s+(\\w+)\\(\\);").matcher(source());
        while (m.find()) pod.add("MOE_EXPERT_" + m.group(1).replaceAll("([a-z0-9])([A-Z])", "$1_$2").toUpperCase());
        assertTrue(pod.contains("MOE_EXPERT_QUANTIZE_GROUP_SIZE") && pod.contains("MOE_EXPERT_BACKEND"), pod.toString());
        List<JsonNode> docs = Charts.documents(Charts.render(null, Map.of("expertDefaults.quantize", "int8",
                "expertDefaults.offloadBudgetBytes", "4294967296", "activations", "int8")));
        JsonNode c = named(docs, "Deployment", "moe-moe-serve-expert-all").path("spec").path("template").path("spec").path("containers").get(0);
        List<String> rendered = new ArrayList<>();
        for (JsonNode e : c.path("env")) if (e.path("name").asText().startsWith("MOE_EXPERT_")) rendered.add(e.path("name").asText());
        assertTrue(rendered.containsAll(List.of("MOE_EXPERT_QUANTIZE", "MOE_EXPERT_QUANTIZE_GROUP_SIZE", "MOE_EXPERT_OFFLOAD_BUDGET_BYTES",
                        "MOE_EXPERT_ACTIVATIONS")),
                rendered.toString());
        for (JsonNode e : c.path("env")) {
            if (e.path("name").asText().equals("MOE_EXPERT_OFFLOAD_BUDGET_BYTES")) assertEquals("4294967296", e.path("value").asText());
        }
        for (String name : rendered) assertTrue(pod.contains(name), name + " is no setting of ExpertPodSettings: " + pod);
    }

    @Test
    void everyQuantizationThePodsAcceptPassesTheSchema() throws Exception {
        Matcher m = Pattern.compile("enum Quantize \\{([^}]*)}").matcher(source());
        assertTrue(m.find(), "ExpertPodSettings.Quantize");
        List<String> pod = List.of(m.group(1).trim().split("\\s*,\\s*"));
        JsonNode schema = Charts.JSON.readTree(Charts.chart().resolve("values.schema.json").toFile());
        for (JsonNode group : List.of(schema.path("properties").path("expertDefaults"),
                schema.path("properties").path("expertGroups").path("additionalProperties"))) {
            List<String> allowed = new ArrayList<>();
            group.path("properties").path("quantize").path("enum").forEach(v -> allowed.add(v.asText()));
            assertTrue(allowed.containsAll(pod), "schema " + allowed + ", pods " + pod);
        }
    }

    @Test
    void theChartsDefaultsAreThePods() throws Exception {
        JsonNode defaults = Charts.YAML.readTree(Charts.chart().resolve("values.yaml").toFile()).path("expertDefaults");
        assertEquals(podDefault("Quantize quantize"), defaults.path("quantize").asText());
        assertEquals(podDefault("int quantizeGroupSize"), defaults.path("quantizeGroupSize").asText());
        assertEquals(podDefault("long offloadBudgetBytes"), defaults.path("offloadBudgetBytes").asText());
    }

    private static String podDefault(String declaration) throws Exception {
        Matcher m = Pattern.compile("@WithDefault\\(\"([^\"]*)\"\\)\\s+" + Pattern.quote(declaration) + "\\(\\)").matcher(source());
        assertTrue(m.find(), declaration + " with a @WithDefault in " + SETTINGS);
        return m.group(1);
    }

    private static String source() throws Exception {
        return Files.readString(SETTINGS);
    }
}
