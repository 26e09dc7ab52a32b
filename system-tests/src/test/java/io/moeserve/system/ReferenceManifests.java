package io.moeserve.system;

import com.fasterxml.jackson.databind.JsonNode;
import io.moeserve.helm.Charts;
import java.io.IOException;
import java.io.StringReader;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import java.util.TreeMap;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * The reference manifests in k8s/ (what quarkus-kubernetes generates for each service) and how they compare with
 * what the Helm chart renders for the same component: the comparison returns the differences, so a test can also
 * show that it notices one.
 */
final class ReferenceManifests {
    static final Path K8S = ServiceProcess.ROOT.resolve("k8s");
    private static final String COMPONENT = "app.kubernetes.io/component", GROUP = "moe-serve.io/expert-group";
    private static final Pattern CHART_SERVICE = Pattern.compile(
            "^" + Charts.RELEASE + "-moe-serve-([a-z0-9-]+)\\." + Charts.NAMESPACE + "\\.svc\\.cluster\\.local$");

    private ReferenceManifests() {}

    /** Modules with a reference manifest: those whose application.properties name their Kubernetes objects. */
    static List<String> services() {
        try (Stream<Path> dirs = Files.list(ServiceProcess.ROOT)) {
            return dirs.filter(d -> {
                Path props = d.resolve("src/main/resources/application.properties");
                try {
                    return Files.isRegularFile(props) && Files.readAllLines(props).stream().anyMatch(l -> l.startsWith("quarkus.kubernetes.name="));
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }).map(d -> d.getFileName().toString()).sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** k8s/&lt;service&gt;.yaml without its leading comment lines (scripts/update-k8s.sh adds them). */
    static String committed(String service) {
        try {
            List<String> lines = new ArrayList<>(Files.readAllLines(K8S.resolve(service + ".yaml")));
            while (!lines.isEmpty() && lines.getFirst().startsWith("#")) lines.removeFirst();
            return String.join("\n", lines) + "\n";
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** What the build generated for the service (target/kubernetes/kubernetes.yml). */
    static String generated(String service) {
        Path p = ServiceProcess.ROOT.resolve(service).resolve("target/kubernetes/kubernetes.yml");
        if (!Files.isRegularFile(p)) throw new AssertionError(p + " is missing: package " + service + " first (./mvnw package)");
        try {
            String s = Files.readString(p);
            return s.endsWith("\n") ? s : s + "\n";
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static List<JsonNode> documents() {
        List<JsonNode> docs = new ArrayList<>();
        for (String s : services()) docs.addAll(Charts.documents(committed(s)));
        return docs;
    }

    /**
     * Differences between the reference objects and the chart's objects of the same component (the chart rendered
     * with its defaults: one expert group "all" hosting every expert, like the reference): ports, env, probes,
     * security, resources, volumes, grace and preStop, image, the labels the Services select on (the headless
     * expert Service is how the router finds pods), and the router's expert map.
     */
    private static final String ROUTER_TARGETS = "MOE_GATEWAY_ROUTER_TARGETS";

    static List<String> differences(List<JsonNode> reference, List<JsonNode> chart) {
        List<String> out = new ArrayList<>();
        for (JsonNode d : Charts.ofKind(reference, "Deployment")) {
            String name = d.path("metadata").path("name").asText();
            JsonNode podLabels = d.path("spec").path("template").path("metadata").path("labels");
            String component = podLabels.path(COMPONENT).asText();
            if (component.isEmpty()) {
                out.add(name + ": pod labels have no " + COMPONENT);
                continue;
            }
            JsonNode c = chartDeployment(chart, component, podLabels.path(GROUP).asText(null));
            if (c == null) {
                out.add(name + ": the chart has no Deployment of component " + component);
                continue;
            }
            String where = name + " vs chart " + c.path("metadata").path("name").asText();
            JsonNode rp = d.path("spec").path("template").path("spec"), cp = c.path("spec").path("template").path("spec");
            JsonNode rc = rp.path("containers").get(0), cc = cp.path("containers").get(0);
            same(out, where, "container name", rc.path("name"), cc.path("name"));
            same(out, where, "ports", ports(rc.path("ports"), "containerPort"), ports(cc.path("ports"), "containerPort"));
            // a chart value naming one of its Services (the gateway's router host) names the reference's own
            Map<String, String> chartEnv = new TreeMap<>(env(cc));
            chartEnv.replaceAll((k, v) -> CHART_SERVICE.matcher(v).replaceAll("moe-serve-$1"));
            // The chart runs several routers behind a headless Service that the gateway resolves and balances over;
            // the reference manifests run one router behind the ClusterIP Service QUARKUS_GRPC_CLIENTS_ROUTER_HOST names.
            String targets = chartEnv.getOrDefault(ROUTER_TARGETS, "");
            if (!env(rc).containsKey(ROUTER_TARGETS) && targets.startsWith("dns:///" + Charts.RELEASE + "-moe-serve-router-headless.")) {
                chartEnv.remove(ROUTER_TARGETS);
            }
            same(out, where, "env", env(rc), chartEnv);
            for (String v : env(rc).values()) {
                if (v.startsWith("moe-serve-") && Charts.ofKind(reference, "Service").stream().noneMatch(x
                        -> v.equals(x.path("metadata").path("name").asText()))) {
                    out.add(where + ": env value " + v + " names no Service of k8s/");
                }
            }
            for (String probe : List.of("startupProbe", "readinessProbe", "livenessProbe")) {
                same(out, where, probe, probe(rc.path(probe), rc), probe(cc.path(probe), cc));
            }
            same(out, where, "pod securityContext", rp.path("securityContext"), cp.path("securityContext"));
            same(out, where, "container securityContext", rc.path("securityContext"), cc.path("securityContext"));
            same(out, where, "automountServiceAccountToken", rp.path("automountServiceAccountToken"), cp.path("automountServiceAccountToken"));
            same(out, where, "resources", rc.path("resources"), cc.path("resources"));
            same(out, where, "volume mounts", mounts(rc), mounts(cc));
            same(out, where, "volumes", volumes(rp), volumes(cp));
            same(out, where, "terminationGracePeriodSeconds", rp.path("terminationGracePeriodSeconds"), cp.path("terminationGracePeriodSeconds"));
            same(out, where, "preStop", rc.path("lifecycle"), cc.path("lifecycle"));
            same(out, where, "image", rc.path("image").asText().replaceFirst("^docker\\.io/", ""), cc.path("image").asText());
            same(out, where, "rolling update", d.path("spec").path("strategy"), c.path("spec").path("strategy"));
            // the labels the chart selects this component's pods by, minus the release's own (instance, name)
            JsonNode chartSelector = c.path("spec").path("selector").path("matchLabels");
            for (String key : List.of(COMPONENT, GROUP)) {
                if (chartSelector.has(key)) {
                    same(out, where, "pod label " + key, podLabels.path(key), chartSelector.path(key));
                    same(out, where, "Deployment selector " + key, d.path("spec").path("selector").path("matchLabels").path(key),
                            chartSelector.path(key));
                }
            }
            selects(out, name + ": Deployment", d.path("spec").path("selector").path("matchLabels"), podLabels);
            JsonNode service = serviceSelecting(reference, podLabels);
            JsonNode chartService = serviceSelecting(chart, c.path("spec").path("template").path("metadata").path("labels"));
            if (service == null) {
                out.add(name + ": no Service selects its pods");
            } else if (chartService != null) {
                String sw = "Service " + service.path("metadata").path("name").asText();
                same(out, sw, "ports", ports(service.path("spec").path("ports"), "port"), ports(chartService.path("spec").path("ports"), "port"));
                same(out, sw, "clusterIP (headless)", service.path("spec").path("clusterIP"), chartService.path("spec").path("clusterIP"));
                for (String key : List.of(COMPONENT, GROUP)) {
                    JsonNode sel = chartService.path("spec").path("selector");
                    if (sel.has(key)) same(out, sw, "selector " + key, service.path("spec").path("selector").path(key), sel.path(key));
                }
            }
        }
        out.addAll(expertMapDifferences(reference, chart));
        return out;
    }

    /** The router's expert map: the chart's keys and values, with endpoints naming a headless reference Service. */
    private static List<String> expertMapDifferences(List<JsonNode> reference, List<JsonNode> chart) {
        List<String> out = new ArrayList<>();
        Map<String, String> ref = expertMap(reference), ch = expertMap(chart);
        if (ref == null || ch == null) {
            out.add("expert map: " + (ref == null ? "no reference" : "no chart") + " ConfigMap with the router's application.properties");
            return out;
        }
        Map<String, String> refRest = new TreeMap<>(ref), chRest = new TreeMap<>(ch);
        refRest.keySet().removeIf(k -> k.endsWith(".endpoints"));
        chRest.keySet().removeIf(k -> k.endsWith(".endpoints"));
        same(out, "expert map", "keys and values besides endpoints", refRest, chRest);
        for (var e : ref.entrySet()) {
            if (!e.getKey().endsWith(".endpoints")) continue;
            String v = e.getValue();
            if (!v.matches("dns:[a-z0-9-]+:9000")) {
                out.add("expert map: " + e.getKey() + "=" + v + " is not dns:<service>:9000");
                continue;
            }
            String svc = v.substring(4, v.lastIndexOf(':'));
            JsonNode s = reference.stream().filter(d -> "Service".equals(d.path("kind").asText())
                    && svc.equals(d.path("metadata").path("name").asText()))
                    .findFirst().orElse(null);
            if (s == null) {
                out.add("expert map: " + e.getKey() + " names Service " + svc + ", which k8s/ does not have");
            } else if (!"None".equals(s.path("spec").path("clusterIP").asText())) {
                out.add("expert map: Service " + svc + " is not headless, so its name resolves to one address, not every pod");
            } else if (Charts.ofKind(reference, "Deployment").stream().noneMatch(d -> matches(s.path("spec").path("selector"),
                    d.path("spec").path("template").path("metadata").path("labels")))) {
                out.add("expert map: Service " + svc + " selects no Deployment's pods");
            }
        }
        return out;
    }

    private static Map<String, String> expertMap(List<JsonNode> docs) {
        for (JsonNode cm : Charts.ofKind(docs, "ConfigMap")) {
            String props = cm.path("data").path("application.properties").asText(null);
            if (props == null || !props.contains("moe.router.experts.")) continue;
            Properties p = new Properties();
            try {
                p.load(new StringReader(props));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            Map<String, String> m = new TreeMap<>();
            p.forEach((k, v) -> m.put(k.toString(), v.toString()));
            return m;
        }
        return null;
    }

    private static JsonNode chartDeployment(List<JsonNode> chart, String component, String group) {
        for (JsonNode d : Charts.ofKind(chart, "Deployment")) {
            JsonNode l = d.path("spec").path("template").path("metadata").path("labels");
            if (component.equals(l.path(COMPONENT).asText()) && (group == null || group.equals(l.path(GROUP).asText()))) return d;
        }
        return null;
    }

    private static JsonNode serviceSelecting(List<JsonNode> docs, JsonNode podLabels) {
        for (JsonNode s : Charts.ofKind(docs, "Service")) if (matches(s.path("spec").path("selector"), podLabels)) return s;
        return null;
    }

    private static boolean matches(JsonNode selector, JsonNode labels) {
        if (selector.isEmpty()) return false;
        for (Iterator<Map.Entry<String, JsonNode>> it = selector.fields(); it.hasNext(); ) {
            var e = it.next();
            if (!e.getValue().asText().equals(labels.path(e.getKey()).asText(null))) return false;
        }
        return true;
    }

    private static void selects(List<String> out, String where, JsonNode selector, JsonNode labels) {
        if (!matches(selector, labels)) out.add(where + " selector " + selector + " does not match its pod labels " + labels);
    }

    private static Map<String, Integer> ports(JsonNode ports, String field) {
        Map<String, Integer> m = new TreeMap<>();
        for (JsonNode p : ports) m.put(p.path("name").asText() + "/" + p.path("protocol").asText("TCP"), p.path(field).asInt());
        return m;
    }

    private static Map<String, String> env(JsonNode container) {
        Map<String, String> m = new TreeMap<>();
        for (JsonNode e : container.path("env")) m.put(e.path("name").asText(), e.has("value") ? e.path("value").asText()
                : e.path("valueFrom").toString());
        return m;
    }

    /** What a probe checks and how often, with a named port resolved to its number. */
    private static Map<String, Object> probe(JsonNode probe, JsonNode container) {
        Map<String, Object> m = new TreeMap<>();
        JsonNode port = probe.path("httpGet").path("port");
        int number = port.isInt() ? port.asInt() : ports(container.path("ports"), "containerPort").getOrDefault(port.asText() + "/TCP", -1);
        m.put("path", probe.path("httpGet").path("path").asText());
        m.put("port", number);
        m.put("initialDelaySeconds", probe.path("initialDelaySeconds").asInt(0));
        m.put("periodSeconds", probe.path("periodSeconds").asInt(10));
        m.put("failureThreshold", probe.path("failureThreshold").asInt(3));
        m.put("timeoutSeconds", probe.path("timeoutSeconds").asInt(1));
        m.put("successThreshold", probe.path("successThreshold").asInt(1));
        return m;
    }

    private static Map<String, String> mounts(JsonNode container) {
        Map<String, String> m = new TreeMap<>();
        for (JsonNode v : container.path("volumeMounts")) m.put(v.path("mountPath").asText(), v.path("name").asText()
                + (v.path("readOnly").asBoolean() ? " ro" : " rw"));
        return m;
    }

    /** Volume name and source kind, the claim for a PVC (the ConfigMap's name is release-specific in the chart). */
    private static Map<String, String> volumes(JsonNode podSpec) {
        Map<String, String> m = new TreeMap<>();
        for (JsonNode v : podSpec.path("volumes")) {
            JsonNode pvc = v.path("persistentVolumeClaim");
            String what = v.has("emptyDir") ? "emptyDir " + v.path("emptyDir")
                    : !pvc.isMissingNode() ? "pvc " + pvc.path("claimName").asText() + (pvc.path("readOnly").asBoolean() ? " ro" : " rw")
                    : v.has("configMap") ? "configMap" : v.toString();
            m.put(v.path("name").asText(), what);
        }
        return m;
    }

    private static void same(List<String> out, String where, String what, Object reference, Object chart) {
        if (!Objects.equals(reference, chart)) out.add(where + ": " + what + " differ: reference " + reference + ", chart " + chart);
    }
}
