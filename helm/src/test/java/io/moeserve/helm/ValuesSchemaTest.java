package io.moeserve.helm;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Invalid values are refused, by values.schema.json or by the templates, with a message that names the field. */
class ValuesSchemaTest {
    @ParameterizedTest(name = "{0}={1} is refused naming {2}")
    @CsvSource(delimiter = '|', value = {
            "expertGroups.g0.replicas              | three        | /expertGroups/g0/replicas",
            "expertGroups.g0.hosts                 | layers 0 to 3 | /expertGroups/g0/hosts",
            "expertGroups.Bad_Name.hosts           | *:0-3        | invalid propertyName 'Bad_Name'",
            "expertDefaults.autoscalling.enabled   | true         | autoscalling",
            "expertGroups.g0.autoscaling.metric    | cpu          | /expertGroups/g0/autoscaling/metric",
            "expertGroups.g0.autoscaling.minReplicas | 0          | /expertGroups/g0/autoscaling/minReplicas",
            "expertGroups.g0.autoscaling.target    | -1           | /expertGroups/g0/autoscaling/target",
            "expertGroups.g0.backend               | cuda         | /expertGroups/g0/backend",
            "expertGroups.g0.quantize              | nf4          | /expertGroups/g0/quantize",
            "expertDefaults.quantize               | q4_0         | /expertDefaults/quantize",
            "expertGroups.g0.quantizeGroupSize     | 0            | /expertGroups/g0/quantizeGroupSize",
            "expertDefaults.quantizeGroupSize      | thirty-two   | /expertDefaults/quantizeGroupSize",
            "autoscaling.engine                    | cron         | /autoscaling/engine",
            "model.source                          | s3           | /model/source",
            "gateway.replicass                     | 2            | replicass",
            "autoscaling.keda.serverAddress        | prometheus:9090 | /autoscaling/keda/serverAddress",
            "expertDefaults.autoscaling.behavior.scaleDown.selectPolicy | Maximum | /expertDefaults/autoscaling/behavior/scaleDown/selectPolicy",
    })
    void schemaRefusesAndNamesTheField(String key, String value, String named) {
        Map<String, Object> set = new java.util.LinkedHashMap<>();
        if (!key.startsWith("expertGroups.g0.") || key.endsWith(".hosts")) set.put("expertGroups.g0.hosts", "*:0-3");
        set.put(key, value.matches("-?\\d+") ? Integer.parseInt(value) : value.equals("true") ? Boolean.TRUE : value);
        if (key.startsWith("expertGroups.g0.") && !key.endsWith(".hosts")) set.put("expertGroups.g0.hosts", "*:0-3");
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Charts.render(null, set));
        assertTrue(e.getMessage().contains("values don't meet the specifications of the schema"), e.getMessage());
        assertTrue(e.getMessage().contains(named), "message names " + named + ": " + e.getMessage());
    }

    @Test
    void anUnknownQuantizationIsRefusedListingTheFormatsThePodsKnow() {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Charts.render(null, Map.of(
                "expertGroups.g0.hosts", "*:0-3", "expertGroups.g0.quantize", "INT4")));
        for (String f : new String[] {"/expertGroups/g0/quantize", "'none'", "'int4'", "'int8'", "'fp8'", "'mxfp4'"}) {
            assertTrue(e.getMessage().contains(f), "message names " + f + ": " + e.getMessage());
        }
    }

    @Test
    void graceTooShortForTheDrainIsRefusedNamingTheField() {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Charts.render(null, Map.of(
                "expertGroups.hot.hosts", "*:0-1", "expertGroups.hot.terminationGracePeriodSeconds", 20,
                "expertGroups.hot.drain.timeoutSeconds", 30)));
        assertTrue(e.getMessage().contains("expertGroups.hot.terminationGracePeriodSeconds (20) must be at least"), e.getMessage());
    }

    @Test
    void minAboveMaxIsRefusedNamingTheField() {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Charts.render(null, Map.of(
                "expertGroups.g0.hosts", "*", "expertGroups.g0.autoscaling.minReplicas", 9, "expertGroups.g0.autoscaling.maxReplicas", 3)));
        assertTrue(e.getMessage().contains("expertGroups.g0.autoscaling.minReplicas (9) is above maxReplicas (3)"), e.getMessage());
    }

    @Test
    void downloadWithoutARepoIsRefused() {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Charts.render(null, Map.of("model.source", "download")));
        assertTrue(e.getMessage().contains("model.download.repo is required"), e.getMessage());
    }

    @Test
    void tlsWithoutASecretIsRefused() {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Charts.render(null, Map.of("tls.enabled", true)));
        assertTrue(e.getMessage().contains("tls.secretName is required when tls.enabled is true"), e.getMessage());
    }

    @Test
    void aTypoInTlsIsRefused() {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Charts.render(null, Map.of("tls.enable", true)));
        assertTrue(e.getMessage().contains("enable"), e.getMessage());
    }

    @Test
    void schemaIsStrictAtEveryLevelWhereTyposAreLikely() throws Exception {
        String schema = Files.readString(Charts.chart().resolve("values.schema.json"));
        assertTrue(schema.contains("\"$schema\": \"http://json-schema.org/draft-07/schema#\""));
        // every object with declared properties closes itself to unknown keys
        var root = Charts.JSON.readTree(schema);
        java.util.List<String> open = new java.util.ArrayList<>();
        walk(root, "", open);
        assertTrue(open.isEmpty(), "objects with properties but no additionalProperties: false: " + open);
    }

    private static void walk(com.fasterxml.jackson.databind.JsonNode n, String path, java.util.List<String> open) {
        if (n.has("properties") && !n.path("additionalProperties").isBoolean()) open.add(path);
        n.fields().forEachRemaining(e -> {
            if (e.getValue().isObject()) walk(e.getValue(), path + "/" + e.getKey(), open);
        });
    }
}
