package io.moeserve.system;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.helm.Charts;
import io.moeserve.helm.KubeSchemas;
import io.moeserve.helm.Tools;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * k8s/, the plain reference deployment: each file is exactly what quarkus-kubernetes generates for its service (so it
 * never drifts from the services' configuration), every object passes the chart tests' strict Kubernetes validation,
 * and the objects agree with what the Helm chart renders for the same component.
 */
class ReferenceManifestsIT {
    @TempDir
    Path work;

    static List<String> services() {
        return ReferenceManifests.services();
    }

    @Test
    void everyServiceHasAReferenceManifestAndNoOtherFileIsThere() throws IOException {
        List<String> services = services();
        assertEquals(List.of("expert-service", "gateway-service", "router-service"), services);
        try (Stream<Path> files = Files.list(ReferenceManifests.K8S)) {
            List<String> yaml = files.map(p -> p.getFileName().toString()).filter(f -> f.endsWith(".yaml") || f.endsWith(".yml")
                    || f.endsWith(".json"))
                    .map(f -> f.substring(0, f.lastIndexOf('.'))).sorted().toList();
            assertEquals(services, yaml, "k8s/ holds one <service>.yaml per service with quarkus.kubernetes.name (scripts/update-k8s.sh)");
        }
    }

    /** The same objects, field for field (quarkus-kubernetes writes label keys in an order that varies from build to build). */
    @ParameterizedTest(name = "k8s/{0}.yaml is what the build generates")
    @MethodSource("services")
    void committedManifestIsWhatTheBuildGenerates(String service) {
        String generated = ReferenceManifests.generated(service);
        assertEquals(Charts.documents(generated), Charts.documents(ReferenceManifests.committed(service)),
                "k8s/" + service + ".yaml differs from " + service + "/target/kubernetes/kubernetes.yml (run scripts/update-k8s.sh), which is:\n"
                        + generated);
    }

    @Test
    void everyObjectPassesStrictKubernetesValidation() throws Exception {
        List<JsonNode> docs = ReferenceManifests.documents();
        assertTrue(docs.size() >= 5, "objects in k8s/: " + docs.size());
        assertEquals(List.of(), problems(docs));
        assertTrue(Charts.ofKind(docs, "ServiceMonitor").isEmpty(), "no ServiceMonitor: it needs the Prometheus Operator's CRDs");
        assertTrue(Charts.ofKind(docs, "HorizontalPodAutoscaler").isEmpty(), "the reference deployment has no autoscaler");
    }

    @Test
    void theValidationRefusesABrokenObject() throws Exception {
        List<JsonNode> docs = ReferenceManifests.documents();
        ObjectNode container = (ObjectNode) Charts.ofKind(docs,
                "Deployment").getFirst().path("spec").path("template").path("spec").path("containers").get(0);
        container.put("imagePullPolicyy", "Always");
        assertFalse(problems(docs).isEmpty(), "a misspelt field is refused");
    }

    @Test
    void consistentWithTheChart() {
        assertEquals(List.of(), ReferenceManifests.differences(ReferenceManifests.documents(), Charts.renderDocs(null)));
    }

    /** The comparison notices a difference in each of the things the router and the chart rely on. */
    @Test
    void theComparisonNoticesEachKindOfDifference() {
        List<JsonNode> chart = Charts.renderDocs(null);
        List<Consumer<List<JsonNode>>> breaks = List.of(
                docs -> container(docs, "expert").path("ports").forEach(p
                        -> { if (p.path("name").asText().equals("grpc")) ((ObjectNode) p).put("containerPort", 9001); }),
                docs -> ((ObjectNode) container(docs, "expert").path("env").get(0)).put("value", "/elsewhere"),
                docs -> ((ObjectNode) pod(docs, "expert").path("metadata").path("labels")).put("moe-serve.io/expert-group", "other"),
                docs -> ((ObjectNode) service(docs, "moe-serve-expert-all").path("spec")).remove("clusterIP"),
                docs -> ((ObjectNode) container(docs, "router").path("readinessProbe").path("httpGet")).put("path", "/q/health/live"),
                docs -> ((ObjectNode) container(docs, "router").path("securityContext")).put("readOnlyRootFilesystem", false),
                docs -> container(docs, "gateway").path("env").forEach(e
                        -> { if (e.path("name").asText().equals("QUARKUS_GRPC_CLIENTS_ROUTER_HOST")) ((ObjectNode) e).put("value",
                                "moe-serve-ruoter"); }),
                docs -> ((ObjectNode) Charts.ofKind(docs, "ConfigMap").getFirst().path("data")).put("application.properties",
                        "moe.router.experts.mode=remote\nmoe.router.experts.routing-table-version=1\nmoe.router.experts.refresh-interval=5s\n"
                                + "moe.router.experts.groups.all.hosts=*\nmoe.router.experts.groups.all.endpoints=dns:moe-serve-expert-none:9000\n"));
        for (int i = 0; i < breaks.size(); i++) {
            List<JsonNode> docs = ReferenceManifests.documents();
            breaks.get(i).accept(docs);
            assertFalse(ReferenceManifests.differences(docs, chart).isEmpty(), "break " + i + " went unnoticed");
        }
    }

    private List<String> problems(List<JsonNode> docs) throws Exception {
        List<String> problems = new ArrayList<>();
        for (JsonNode d : docs) problems.addAll(KubeSchemas.problems(d));
        Tools.Result node = Tools.nodeValidate(docs, null, work);
        if (node.exitCode() != 0) problems.addAll(Tools.lines(node.output()));
        // IntOrString fields: a string must be a percentage, which no schema above checks
        for (JsonNode d : Charts.ofKind(docs, "Deployment")) {
            JsonNode ru = d.path("spec").path("strategy").path("rollingUpdate");
            for (String f : List.of("maxSurge", "maxUnavailable")) {
                if (ru.path(f).isTextual() && !ru.path(f).asText().endsWith("%")) problems.add(d.path("metadata").path("name").asText() + ": " + f
                        + " '" + ru.path(f).asText() + "' is neither a number nor a percentage");
            }
        }
        return problems;
    }

    private static JsonNode pod(List<JsonNode> docs, String component) {
        return Charts.ofKind(docs, "Deployment").stream()
                .filter(d -> component.equals(
                        d.path("spec").path("template").path("metadata").path("labels").path("app.kubernetes.io/component").asText()))
                .findFirst().orElseThrow().path("spec").path("template");
    }

    private static ObjectNode container(List<JsonNode> docs, String component) {
        return (ObjectNode) ((ArrayNode) pod(docs, component).path("spec").path("containers")).get(0);
    }

    private static JsonNode service(List<JsonNode> docs, String name) {
        return Charts.named(docs, "Service", name);
    }
}
