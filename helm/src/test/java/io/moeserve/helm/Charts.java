package io.moeserve.helm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import com.marcnuri.helm.Helm;
import com.marcnuri.helm.LintResult;
import com.marcnuri.helm.TemplateCommand;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/** The chart rendered and linted by the Helm engine that helm-java embeds (Helm 3.21), and the YAML it produces. */
public final class Charts {
    public static final ObjectMapper YAML = new ObjectMapper(new YAMLFactory());
    public static final ObjectMapper JSON = new ObjectMapper();
    public static final String RELEASE = "moe", NAMESPACE = "serving";
    /** The Kubernetes version of the API model the objects are checked against (client-java 27). */
    public static final String KUBE_VERSION = "1.35.0";

    private Charts() {}

    public static Path helmDir() {
        return Path.of(System.getProperty("moe.helm.dir", "helm")).toAbsolutePath();
    }

    public static Path chart() {
        return helmDir().resolve("moe-serve");
    }

    public static Path example(String name) {
        return helmDir().resolve("examples").resolve(name + ".yaml");
    }

    public static List<String> examples() {
        try (Stream<Path> s = Files.list(helmDir().resolve("examples"))) {
            return s.map(p -> p.getFileName().toString()).filter(f -> f.endsWith(".yaml")).map(f -> f.substring(0, f.length() - 5)).sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** {@code helm template moe helm/moe-serve -n serving [-f values] [--set k=v ...]}; throws on a render error. */
    public static String render(Path values, Map<String, Object> sets) {
        TemplateCommand t = new Helm(chart()).template().withName(RELEASE).withNamespace(NAMESPACE).withKubeVersion(KUBE_VERSION);
        if (values != null) t = t.withValuesFile(values);
        for (Map.Entry<String, Object> e : sets.entrySet()) t = t.set(e.getKey(), e.getValue());
        return t.call();
    }

    public static List<JsonNode> documents(String yaml) {
        List<JsonNode> docs = new ArrayList<>();
        try (var it = YAML.readerFor(JsonNode.class).<JsonNode>readValues(yaml)) {
            while (it.hasNext()) {
                JsonNode n = it.next();
                if (n != null && !n.isNull() && !n.isMissingNode() && !n.isEmpty()) docs.add(n);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return docs;
    }

    /**
     * Renders with the test hooks included: helm-java's template leaves hooks out (as {@code helm install} does until
     * {@code helm test}), so the hook annotation is renamed in a copy of the chart and the test Pod renders as an
     * ordinary object.
     */
    public static List<JsonNode> renderWithTestHooks(Path values, Path workDir) throws IOException {
        Path copy = workDir.resolve("hooks/moe-serve");
        copyTree(chart(), copy);
        try (Stream<Path> s = Files.list(copy.resolve("templates/tests"))) {
            for (Path p : (Iterable<Path>) s::iterator) Files.writeString(p, Files.readString(p).replace("helm.sh/hook:", "moe-serve.io/helm-hook:"));
        }
        TemplateCommand t = new Helm(copy).template().withName(RELEASE).withNamespace(NAMESPACE).withKubeVersion(KUBE_VERSION);
        if (values != null) t = t.withValuesFile(values);
        return documents(t.call());
    }

    public static List<JsonNode> renderDocs(Path values) {
        return documents(render(values, Map.of()));
    }

    /**
     * {@code helm lint --strict} with the chart's defaults overlaid by {@code values}: helm-java's lint reads only the
     * chart's own values.yaml, so the overlay is written into a copy of the chart.
     */
    public static LintResult lint(Path values, Path workDir) throws IOException {
        Path copy = workDir.resolve("moe-serve");
        copyTree(chart(), copy);
        if (values != null) {
            JsonNode merged = merge(YAML.readTree(chart().resolve("values.yaml").toFile()), YAML.readTree(values.toFile()));
            YAML.writeValue(copy.resolve("values.yaml").toFile(), merged);
        }
        return new Helm(copy).lint().strict().call();
    }

    /** Helm's values merge: maps merge key by key, everything else (lists included) is replaced. */
    public static JsonNode merge(JsonNode base, JsonNode over) {
        if (over == null || over.isNull()) return base;
        if (!base.isObject() || !over.isObject()) return over;
        ObjectNode out = ((ObjectNode) base).deepCopy();
        for (Iterator<Map.Entry<String, JsonNode>> it = over.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            out.set(e.getKey(), out.has(e.getKey()) ? merge(out.get(e.getKey()), e.getValue()) : e.getValue());
        }
        return out;
    }

    private static void copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> s = Files.walk(from)) {
            for (Path p : (Iterable<Path>) s::iterator) {
                Path t = to.resolve(from.relativize(p).toString());
                if (Files.isDirectory(p)) Files.createDirectories(t);
                else Files.copy(p, t);
            }
        }
    }

    public static List<JsonNode> ofKind(List<JsonNode> docs, String kind) {
        return docs.stream().filter(d -> kind.equals(d.path("kind").asText())).toList();
    }

    public static JsonNode named(List<JsonNode> docs, String kind, String name) {
        return docs.stream().filter(d -> kind.equals(d.path("kind").asText()) && name.equals(d.path("metadata").path("name").asText()))
                .findFirst().orElseThrow(() -> new AssertionError("no " + kind + " " + name + " rendered"));
    }

    public static JsonNode env(JsonNode container, String name) {
        for (JsonNode e : container.path("env")) if (name.equals(e.path("name").asText())) return e;
        throw new AssertionError("no env " + name + " in container " + container.path("name").asText());
    }
}
