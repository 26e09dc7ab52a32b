package io.moeserve.system;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A real Prometheus server (Debian's {@code prometheus} binary) scraping the services on loopback, queried through
 * its HTTP API. Static scrape targets carry the labels Kubernetes service discovery would give each pod
 * ({@code namespace}, {@code pod}), since that is what the autoscalers' queries match on.
 */
final class PrometheusServer implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

    /** One scrape target: a service's HTTP port and the pod it stands for. */
    record Target(int port, String namespace, String pod) {}

    final int port;
    final Path log;
    private final Process process;

    private PrometheusServer(int port, Path log, Process process) {
        this.port = port;
        this.log = log;
        this.process = process;
    }

    /** Starts Prometheus scraping /q/metrics of every target every {@code interval}; fails if it is not installed. */
    static PrometheusServer start(Path dir, List<Target> targets, Duration interval) {
        StringBuilder config = new StringBuilder();
        String every = interval.toMillis() + "ms";
        config.append("global:\n  scrape_interval: ").append(every).append("\n  scrape_timeout: ").append(every)
                .append("\n  evaluation_interval: ").append(every)
                .append("\nscrape_configs:\n  - job_name: moe-serve\n    metrics_path: /q/metrics\n    static_configs:\n");
        for (Target t : targets) {
            config.append("      - targets: ['127.0.0.1:").append(t.port()).append("']\n        labels: {namespace: ").append(t.namespace())
                    .append(", pod: ").append(t.pod()).append("}\n");
        }
        try {
            Files.createDirectories(dir);
            Path file = dir.resolve("prometheus.yml");
            Files.writeString(file, config);
            int port = ServiceProcess.freePort();
            Path log = dir.resolve("prometheus.log");
            List<String> cmd = List.of("prometheus", "--config.file=" + file, "--storage.tsdb.path=" + dir.resolve("data"),
                    "--web.listen-address=127.0.0.1:" + port, "--log.level=warn");
            Process p;
            try {
                p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            } catch (IOException e) {
                throw new AssertionError("prometheus is not installed: this test needs the Prometheus server (Debian package prometheus; "
                        + "test.sh installs it when run as root)", e);
            }
            Runtime.getRuntime().addShutdownHook(new Thread(p::destroyForcibly));
            PrometheusServer s = new PrometheusServer(port, log, p);
            s.awaitReady();
            return s;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private void awaitReady() {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (System.nanoTime() < deadline) {
            if (!process.isAlive()) throw new IllegalStateException("prometheus exited with " + process.exitValue() + ":\n" + logText());
            try {
                if (get("/-/ready").statusCode() == 200) return;
            } catch (UncheckedIOException e) {
                // not listening yet
            }
            ServiceProcess.sleep(100);
        }
        throw new IllegalStateException("prometheus not ready after 30 s:\n" + logText());
    }

    /** An instant query evaluated at {@code unixSeconds}: the result vector, one element per series. */
    JsonNode query(String promql, double unixSeconds) {
        return api("/api/v1/query?query=" + enc(promql) + "&time=" + String.format("%.3f", unixSeconds));
    }

    /** A range query: per series, its values from {@code start} to {@code end} every {@code stepSeconds}. */
    JsonNode queryRange(String promql, double start, double end, double stepSeconds) {
        return api("/api/v1/query_range?query=" + enc(promql) + "&start=" + String.format("%.3f", start) + "&end="
                + String.format("%.3f", end) + "&step=" + stepSeconds);
    }

    /** The instant query's value for each series, keyed by the series' value of {@code label} (or "" for none). */
    Map<String, Double> values(String promql, double unixSeconds, String label) {
        Map<String, Double> out = new LinkedHashMap<>();
        for (JsonNode r : query(promql, unixSeconds)) out.put(r.path("metric").path(label).asText(""), r.path("value").get(1).asDouble());
        return out;
    }

    private JsonNode api(String path) {
        HttpResponse<String> r = get(path);
        try {
            JsonNode body = JSON.readTree(r.body());
            if (r.statusCode() != 200 || !"success".equals(body.path("status").asText())) {
                throw new IllegalStateException("prometheus refused " + path + ": " + r.body());
            }
            return body.path("data").path("result");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private HttpResponse<String> get(String path) {
        try {
            return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).timeout(Duration.ofSeconds(10)).build(),
                    HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    private static String enc(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8);
    }

    String logText() {
        try {
            return Files.readString(log);
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

    @Override
    public void close() {
        process.destroy();
        try {
            if (!process.waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) process.destroyForcibly();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            process.destroyForcibly();
        }
    }
}
