package io.moeserve.system;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * One service started from its packaged build output as its own JVM, on free loopback ports, with its log in
 * {@code system-tests/target/logs}. Started processes are stopped when the test JVM exits, whatever happens.
 */
final class ServiceProcess implements AutoCloseable {
    static final Path ROOT = Path.of(System.getProperty("moe.repo.root", "..")).toAbsolutePath().normalize();
    /** The setting that runs another build of a service (see {@link #start(String, String, Map, int)}). */
    static final String APP = "moe.bench.app";
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(2)).build();

    final String name;
    final int httpPort;
    final int grpcPort;
    final Path log;
    private final Process process;

    private ServiceProcess(String name, int httpPort, int grpcPort, Path log, Process process) {
        this.name = name;
        this.httpPort = httpPort;
        this.grpcPort = grpcPort;
        this.log = log;
        this.process = process;
    }

    /** Starts {@code module}'s packaged app with the given configuration (as -D properties). */
    static ServiceProcess start(String name, String module, Map<String, String> config) {
        return start(name, module, config, freePort());
    }

    /**
     * As {@link #start(String, String, Map)}, with a given gRPC port (pods sharing a port on different addresses). A
     * {@value #APP} entry in {@code config} names another build's {@code quarkus-app} directory to run instead of the
     * module's own (a benchmark comparing two builds in the same rounds: copy one's {@code target/quarkus-app} aside).
     */
    static ServiceProcess start(String name, String module, Map<String, String> config, int grpcPort) {
        Path jar = ROOT.resolve(module).resolve("target/quarkus-app/quarkus-run.jar");
        if (config.containsKey(APP)) {
            jar = Path.of(config.get(APP)).resolve("quarkus-run.jar");
            config = new java.util.LinkedHashMap<>(config);
            config.remove(APP);
        }
        if (!Files.isRegularFile(jar)) {
            throw new IllegalStateException(jar + " is missing: package the services first (./mvnw package)");
        }
        int http = freePort();
        int grpc = grpcPort;
        List<String> cmd = new ArrayList<>();
        cmd.add(ProcessHandle.current().info().command().orElse("java"));
        cmd.add("--add-modules=jdk.incubator.vector");
        cmd.add("--enable-native-access=ALL-UNNAMED");
        cmd.add("-Xmx1g");
        cmd.add("-XX:+UseSerialGC");
        // Extra JVM options for every service, e.g. a JFR recording when profiling a benchmark.
        String extra = System.getenv("MOE_SERVICE_JAVA_OPTS");
        if (extra != null && !extra.isBlank()) cmd.addAll(List.of(extra.trim().split("\\s+")));
        cmd.add("-Dquarkus.http.port=" + http);
        cmd.add("-Dquarkus.grpc.server.port=" + grpc);
        config.forEach((k, v) -> cmd.add("-D" + k + "=" + v));
        cmd.add("-jar");
        cmd.add(jar.toString());
        try {
            Path logs = ROOT.resolve("system-tests/target/logs");
            Files.createDirectories(logs);
            Path log = logs.resolve(name + "-" + http + ".log");
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            ServiceProcess s = new ServiceProcess(name, http, grpc, log, p);
            Runtime.getRuntime().addShutdownHook(new Thread(p::destroyForcibly));
            return s;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static final java.util.Set<Integer> HANDED_OUT = java.util.concurrent.ConcurrentHashMap.newKeySet();

    /**
     * A port nothing listens on now and that this JVM has not handed out before: the OS may offer a just-closed
     * ephemeral port twice, and two services started together must not both get it.
     */
    static int freePort() {
        while (true) {
            try (ServerSocket s = new ServerSocket(0)) {
                if (HANDED_OUT.add(s.getLocalPort())) return s.getLocalPort();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    /** Waits until /q/health/ready answers 200; fails with the log's tail if the process dies or time runs out. */
    ServiceProcess awaitReady(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            if (!process.isAlive()) throw new IllegalStateException(name + " exited with " + process.exitValue() + ":\n" + tail());
            try {
                HttpResponse<String> r = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpPort + "/q/health/ready"))
                        .timeout(Duration.ofSeconds(2)).build(), HttpResponse.BodyHandlers.ofString());
                if (r.statusCode() == 200) return this;
            } catch (IOException e) {
                // not listening yet
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
            sleep(100);
        }
        throw new IllegalStateException(name + " not ready after " + timeout + ":\n" + tail());
    }

    /** CPU time the process has used so far, all its threads, user and system; -1 where the OS does not say. */
    long cpuNanos() {
        return process.toHandle().info().totalCpuDuration().map(Duration::toNanos).orElse(-1L);
    }

    /** GET on the service's HTTP port. */
    String get(String path) {
        try {
            return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpPort + path)).timeout(Duration.ofSeconds(10)).build(),
                    HttpResponse.BodyHandlers.ofString()).body();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** SIGTERM: the service drains and exits by itself. */
    void terminate() {
        process.destroy();
    }

    /** SIGKILL: gone at once, as a crashed pod. */
    void kill() {
        process.destroyForcibly();
        waitFor(Duration.ofSeconds(10));
    }

    boolean waitFor(Duration timeout) {
        try {
            return process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    boolean isAlive() {
        return process.isAlive();
    }

    int exitValue() {
        return process.exitValue();
    }

    String tail() {
        try {
            List<String> lines = Files.readAllLines(log);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

    String logText() {
        try {
            return Files.readString(log);
        } catch (IOException e) {
            return "";
        }
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        if (!process.isAlive()) return;
        process.destroy();
        if (!waitFor(Duration.ofSeconds(15))) kill();
    }
}
