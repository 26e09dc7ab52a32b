package io.moeserve.system;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moeserve.runtime.family.Architecture;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Issue 13's reliability scenarios beside the router kill, as benchmarks: {@link RouterKillDriver#load}'s clients
 * streaming through a gateway over a router and expert pods in their own processes (a {@link Deployment}), and one
 * event halfway.
 *
 * <ul>
 *   <li>{@code tls-reload}: every gRPC hop over mutual TLS (as {@link InternalTlsIT} sets it up, files re-read every
 *       second); the event renews the certificate all three services share (a new key, the same CA), as cert-manager
 *       rewrites a Secret. Reported beside requests, failures and gaps: how many services logged the reload, and
 *       whether the router's and the pod's ports then hand out the new certificate to a new connection.
 *   <li>{@code degraded-mask} and {@code degraded-fail}: two expert groups, "high" with two replicas; the event kills
 *       both, so no pod hosts experts 4-7. With {@code moe.router.experts.degraded-mode=mask} the router drops them
 *       from each token's top-k; reported: the masked pairs the clients were told of (the streams' closing comment)
 *       beside the router's counter. With the default mode the requests that needed the group fail; reported: how
 *       (HTTP status and OpenAI error type before the stream, or an error event inside it).
 * </ul>
 *
 * <p>{@code scripts/bench-reliability.sh SCENARIO [SECONDS] [STREAMS]} (defaults 60 and 8) prints one Markdown row.
 */
public final class ReliabilityDriver {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern MASKED_HIGH = Pattern.compile("(?m)^moe_router_expert_masked_pairs_total\\{group=\"high\"[^}]*} (\\S+)$");

    private ReliabilityDriver() {}

    private static ServiceProcess gateway(Deployment d, Map<String, String> extra) {
        Map<String, String> g = new HashMap<>(extra);
        g.put("moe.model.path", d.model.toString());
        g.put("moe.model.id", d.modelId);
        g.put("quarkus.grpc.clients.router.host", "127.0.0.1");
        g.put("quarkus.grpc.clients.router.port", Integer.toString(d.router.grpcPort));
        return ServiceProcess.start("gateway", "gateway-service", g);
    }

    private static String gaps(RouterKillDriver.Load l) {
        return String.format(Locale.ROOT, "%d streams across the event, longest gap %.0f ms (%.0f ms elsewhere)", l.spanning(),
                l.longestGapAcrossMs(), l.longestGapElsewhereMs());
    }

    /** The renewed certificate while the load runs; see the class comment. */
    static String tlsReload(Path model, int seconds, int streams) throws Exception {
        Path certs = Files.createTempDirectory("moe-tls-reload-");
        openssl(certs, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
                "-subj", "/CN=moe-serve reload CA");
        issue(certs, "tls");
        String before = serial(certs.resolve("tls.crt"));
        Map<String, String> tls = Map.of("moe.tls.enabled", "true", "moe.tls.mutual", "true", "moe.tls.reload-period", "1s",
                "moe.tls.certificate", certs.resolve("tls.crt").toString(), "moe.tls.key", certs.resolve("tls.key").toString(),
                "moe.tls.ca", certs.resolve("ca.crt").toString());
        try (Deployment d = new Deployment(model, RouterKillDriver.MODEL_ID)) {
            d.startExpert("all", "*", tls);
            d.startRouter(tls);
            try (ServiceProcess gateway = gateway(d, tls)) {
                d.awaitReady();
                gateway.awaitReady(Deployment.START);
                List<ServiceProcess> all = List.of(gateway, d.router, d.experts.get("all").getFirst());
                RouterKillDriver.Load l = RouterKillDriver.load(gateway, streams, seconds, () -> renew(certs));
                String after = serial(certs.resolve("tls.crt"));
                long reloaded = all.stream().filter(p -> p.logText().contains("moe.tls: reloaded")).count();
                boolean routerServesNew = after.equals(served(certs, d.router.grpcPort));
                boolean podServesNew = after.equals(served(certs, d.experts.get("all").getFirst().grpcPort));
                report(l);
                return String.format(Locale.ROOT, "| certificate renewed (serial %s → %s), %d streams, %d s | %d | %d | %s; reloaded by %d of 3"
                        + " services; new connections get the new certificate: router %s, pod %s |", before, after, streams, seconds,
                        l.outcomes().size(), l.failures(), gaps(l), reloaded, routerServesNew ? "yes" : "NO", podServesNew ? "yes" : "NO");
            }
        } finally {
            try (var files = Files.list(certs)) {
                for (Path f : files.toList()) Files.delete(f);
            }
            Files.delete(certs);
        }
    }

    /** A new key and certificate from the same CA, moved over the old ones key first (GrpcTls waits for both). */
    private static void renew(Path certs) {
        issue(certs, "renewed");
        try {
            Files.move(certs.resolve("renewed.key"), certs.resolve("tls.key"), StandardCopyOption.REPLACE_EXISTING,
                    StandardCopyOption.ATOMIC_MOVE);
            Files.move(certs.resolve("renewed.crt"), certs.resolve("tls.crt"), StandardCopyOption.REPLACE_EXISTING,
                    StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        // wait out two reload periods, so the row's figures are those of a load the reload happened under
        ServiceProcess.sleep(2_000);
    }

    private static void issue(Path certs, String name) {
        openssl(certs, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=moe-serve " + name);
        try {
            Files.writeString(certs.resolve(name + ".ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        openssl(certs, "x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", name + ".crt",
                "-days", "2", "-extfile", name + ".ext");
    }

    private static String serial(Path certificate) {
        return openssl(certificate.getParent(), "x509", "-noout", "-serial", "-in", certificate.getFileName().toString()).trim()
                .replace("serial=", "");
    }

    /** The serial of the certificate a new TLS connection to {@code port} is handed (offering the current one). */
    private static String served(Path certs, int port) {
        String out = openssl(certs, "s_client", "-connect", "127.0.0.1:" + port, "-cert", "tls.crt", "-key", "tls.key", "-CAfile", "ca.crt",
                "-alpn", "h2");
        Matcher m = Pattern.compile("-----BEGIN CERTIFICATE-----[\\s\\S]*?-----END CERTIFICATE-----").matcher(out);
        if (!m.find()) return "none";
        try {
            Path pem = Files.createTempFile(certs, "served-", ".crt");
            Files.writeString(pem, m.group() + "\n");
            return serial(pem);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** openssl in {@code dir} with no input, its output. */
    private static String openssl(Path dir, String... args) {
        List<String> cmd = new ArrayList<>(List.of("openssl"));
        cmd.addAll(List.of(args));
        try {
            Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true)
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
            String out = new String(p.getInputStream().readAllBytes());
            if (!p.waitFor(60, TimeUnit.SECONDS)) throw new IllegalStateException(cmd + " did not finish: " + out);
            if (p.exitValue() != 0 && !args[0].equals("s_client")) throw new IllegalStateException(cmd + " failed: " + out);
            return out;
        } catch (IOException e) {
            throw new IllegalStateException("openssl must be on the PATH: " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** Every replica of group "high" killed while the load runs; see the class comment. */
    static String degraded(Path model, int seconds, int streams, boolean mask) throws Exception {
        try (Deployment d = new Deployment(model, RouterKillDriver.MODEL_ID)) {
            d.startExpert("low", "*:0-3");
            d.startExpert("high", "*:4-7");
            d.startExpert("high", "*:4-7");
            d.startRouter(mask ? Map.of("moe.router.experts.degraded-mode", "mask") : Map.of());
            try (ServiceProcess gateway = gateway(d, Map.of())) {
                d.awaitReady();
                gateway.awaitReady(Deployment.START);
                RouterKillDriver.Load l = RouterKillDriver.load(gateway, streams, seconds, () -> {
                    for (ServiceProcess p : d.experts.get("high")) p.kill();
                });
                report(l);
                String setting = mask ? "mask" : "fail (the default)";
                String head = String.format(Locale.ROOT, "| both replicas of group high (experts 4-7) killed, degraded-mode %s, %d streams,"
                        + " %d s | %d | %d | ", setting, streams, seconds, l.outcomes().size(), l.failures());
                if (mask) {
                    long told = l.outcomes().stream().mapToLong(RouterKillDriver.Outcome::masked).sum();
                    long maskedRequests = l.outcomes().stream().filter(o -> o.masked() > 0).count();
                    Matcher m = MASKED_HIGH.matcher(d.router.get("/q/metrics"));
                    String counted = m.find() ? String.format(Locale.ROOT, "%.0f", Double.parseDouble(m.group(1))) : "not exported";
                    return head + String.format(Locale.ROOT, "%d requests masked, %d pairs reported to clients, router counter %s; %s |",
                            maskedRequests, told, counted, gaps(l));
                }
                return head + failures(l) + "; " + gaps(l) + " |";
            }
        }
    }

    /** The failures by kind: HTTP status with the OpenAI error's type and code, or an error event inside the stream. */
    private static String failures(RouterKillDriver.Load l) {
        Map<String, Integer> kinds = new TreeMap<>();
        for (RouterKillDriver.Outcome o : l.outcomes()) {
            if (o.ok()) continue;
            String kind;
            if (o.status() == 200) {
                kind = "error event after " + (o.chunkNanos().isEmpty() ? "no chunk" : "chunks") + " (" + errorType(o.error()) + ")";
            } else if (o.status() == 0) {
                kind = "connection: " + o.error();
            } else {
                String body = o.error().substring(o.error().indexOf(' ', 5) + 1);
                kind = "HTTP " + o.status() + " " + errorType(body);
            }
            kinds.merge(kind, 1, Integer::sum);
        }
        if (kinds.isEmpty()) return "none failed";
        List<String> parts = new ArrayList<>();
        kinds.forEach((k, n) -> parts.add(n + " × " + k));
        return String.join(", ", parts);
    }

    /** "type/code" of an OpenAI error object ({@code {"error": {...}}} or the inner object), or "not OpenAI's format". */
    private static String errorType(String json) {
        try {
            JsonNode n = JSON.readTree(json);
            JsonNode e = n.has("error") ? n.get("error") : n;
            if (!e.hasNonNull("message") || !e.has("type")) return "not OpenAI's format: " + json;
            return e.get("type").asText() + "/" + e.path("code").asText();
        } catch (IOException e) {
            return "not JSON: " + json;
        }
    }

    /** The first failures in full, so a row's counts can be checked against what the client saw. */
    private static void report(RouterKillDriver.Load l) {
        l.outcomes().stream().filter(o -> !o.ok()).limit(3).forEach(o -> System.out.println("failed: " + o.status() + " " + o.error()));
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            throw new IllegalArgumentException("usage: ReliabilityDriver MODEL tls-reload|degraded-mask|degraded-fail [SECONDS] [STREAMS]");
        }
        Path model = !args[0].isEmpty() ? Path.of(args[0]).toAbsolutePath() : Models.small(Architecture.MIXTRAL);
        int seconds = args.length > 2 ? Integer.parseInt(args[2]) : 60;
        int streams = args.length > 3 ? Integer.parseInt(args[3]) : 8;
        long started = System.nanoTime();
        String row = switch (args[1]) {
            case "tls-reload" -> tlsReload(model, seconds, streams);
            case "degraded-mask" -> degraded(model, seconds, streams, true);
            case "degraded-fail" -> degraded(model, seconds, streams, false);
            default -> throw new IllegalArgumentException("unknown scenario " + args[1]);
        };
        System.out.println(row);
        System.out.printf(Locale.ROOT, "(%s in %.0f s, start-up and warm-up round included)%n", args[1],
                Duration.ofNanos(System.nanoTime() - started).toMillis() / 1e3);
    }
}
