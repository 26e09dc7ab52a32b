package io.moeserve.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moeserve.cli.SyntheticModel;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.synthetic.SyntheticCheckpointGenerator;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/**
 * A burst of near-cap request bodies cannot take the gateway's heap: the packaged gateway (quarkus-run.jar) runs as
 * its own process with a 256 MiB heap, exiting on OutOfMemoryError, in front of a {@link FakeRouter}; {@link #CLIENTS}
 * clients send chat requests of just under the 4 MiB body cap at once, {@link #ROUNDS} times over. Every answer must
 * be below 500 with an OpenAI error object (400 for a prompt past the context, 429 with Retry-After when the body
 * budget is spent), small requests sent meanwhile must all succeed, and the gateway must still be running and ready.
 *
 * <p>Without the body budget (RequestBodyReader) each such body becomes about 30 times its size in the heap while it
 * is parsed, rendered and tokenized, and the burst ends the process: {@code -Dmoe.burst.body-memory=1G} gives the
 * gateway a budget as large as its heap, to see that happen.
 */
class LargeBodyBurstIT {
    static final int CLIENTS = 16;
    static final int ROUNDS = 3;
    static final int CAP = 4 << 20;
    static final String HEAP = "-Xmx256m";
    static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void nearCapBodiesGetOpenAiErrorsAndLeaveTheGatewayServing() throws Exception {
        Path checkpoint = Files.createTempDirectory("moe-burst").resolve(FakeRouterResource.MODEL_ID);
        var config = SyntheticModel.generate(checkpoint, SyntheticCheckpointGenerator.Spec.tiny(Architecture.MIXTRAL));
        int port = freePort();
        Path log = Path.of("target/large-body-burst-gateway.log");
        try (FakeRouter router = new FakeRouter(checkpoint, FakeRouterResource.MODEL_ID, config.vocabSize())) {
            List<String> cmd = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"),
                    "--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                    HEAP, "-XX:+UseParallelGC", "-XX:+ExitOnOutOfMemoryError",
                    "-Dquarkus.http.port=" + port, "-Dmoe.model.path=" + checkpoint,
                    "-Dquarkus.grpc.clients.router.host=127.0.0.1", "-Dquarkus.grpc.clients.router.port=" + router.port(),
                    "-Dquarkus.http.limits.max-body-size=" + CAP, "-Dmoe.gateway.output-parser=none"));
            // the default budget (a sixty-fourth of the heap) unless asked otherwise
            String budget = System.getProperty("moe.burst.body-memory");
            if (budget != null) cmd.add("-Dmoe.gateway.body-memory=" + budget);
            cmd.addAll(List.of("-jar", Path.of("target/quarkus-app/quarkus-run.jar").toAbsolutePath().toString()));
            Process gateway = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            try {
                run(gateway, port, log);
            } finally {
                gateway.destroy();
                if (!gateway.waitFor(15, TimeUnit.SECONDS)) gateway.destroyForcibly();
            }
        }
    }

    private static void run(Process gateway, int port, Path log) throws Exception {
        HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).connectTimeout(Duration.ofSeconds(5)).build();
        String base = "http://127.0.0.1:" + port;
        awaitReady(client, base, gateway, log);

        byte[] big = nearCapBody();
        ExecutorService pool = Executors.newFixedThreadPool(CLIENTS + 1);
        Map<Integer, Integer> byStatus = new ConcurrentHashMap<>();
        ConcurrentLinkedQueue<String> failures = new ConcurrentLinkedQueue<>();
        AtomicBoolean bursting = new AtomicBoolean(true);
        Future<Integer> small = pool.submit(() -> {
            int ok = 0;
            while (bursting.get()) {
                HttpResponse<String> r = post(client, base, ("{\"model\":\"tiny-moe\",\"messages\":[{\"role\":\"user\",\"content\":"
                        + "\"hi\"}],\"max_tokens\":3}").getBytes(StandardCharsets.UTF_8));
                if (r.statusCode() != 200) failures.add("a small request during the burst: " + r.statusCode() + " " + r.body());
                else ok++;
                Thread.sleep(50);
            }
            return ok;
        });
        try {
            for (int round = 0; round < ROUNDS; round++) {
                List<Future<?>> sent = new ArrayList<>();
                for (int c = 0; c < CLIENTS; c++) {
                    sent.add(pool.submit(() -> {
                        HttpResponse<String> r = post(client, base, big);
                        byStatus.merge(r.statusCode(), 1, Integer::sum);
                        String why = check(r);
                        if (why != null) failures.add(why);
                        return null;
                    }));
                }
                for (Future<?> f : sent) f.get(5, TimeUnit.MINUTES);
                assertTrue(gateway.isAlive(), "the gateway exited in round " + round + ":\n" + tail(log));
            }
        } finally {
            bursting.set(false);
        }
        int smallOk = small.get(1, TimeUnit.MINUTES);
        pool.shutdown();
        assertEquals(List.of(), List.copyOf(failures), "answers by status: " + new TreeMap<>(byStatus));
        assertTrue(smallOk > 0, "no small request completed during the burst");
        assertEquals(CLIENTS * ROUNDS, byStatus.values().stream().mapToInt(Integer::intValue).sum());
        assertTrue(gateway.isAlive(), "the gateway exited:\n" + tail(log));
        HttpResponse<String> ready = client.send(HttpRequest.newBuilder(URI.create(base + "/q/health/ready")).build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, ready.statusCode(), ready.body());
        System.out.printf("%d near-cap bodies in %d rounds of %d: %s; %d small requests served meanwhile%n",
                CLIENTS * ROUNDS, ROUNDS, CLIENTS, new TreeMap<>(byStatus), smallOk);
    }

    /** Why an answer to a near-cap body is wrong, or null: below 500, an OpenAI error, 429 with Retry-After. */
    private static String check(HttpResponse<String> r) {
        if (r.statusCode() >= 500 || r.statusCode() < 400) return "near-cap body: " + r.statusCode() + " " + abbreviate(r.body());
        try {
            JsonNode error = JSON.readTree(r.body()).path("error");
            if (!error.path("message").isTextual() || !error.path("type").isTextual() || !error.has("code")) {
                return "not an OpenAI error: " + r.statusCode() + " " + abbreviate(r.body());
            }
        } catch (IOException e) {
            return "not JSON: " + r.statusCode() + " " + abbreviate(r.body());
        }
        if (r.statusCode() == 429 && r.headers().firstValue("Retry-After").isEmpty()) return "429 without Retry-After";
        return null;
    }

    /** A valid chat request of just under the cap: one user message of words, far past the model's context. */
    private static byte[] nearCapBody() {
        String head = "{\"model\":\"tiny-moe\",\"max_tokens\":3,\"messages\":[{\"role\":\"user\",\"content\":\"";
        String tail = "\"}]}";
        StringBuilder b = new StringBuilder(CAP).append(head);
        String[] words = {"alpha ", "beta ", "gamma ", "delta ", "epsilon "};
        for (int i = 0; b.length() < CAP - 4096; i++) b.append(words[i % words.length]);
        return b.append(tail).toString().getBytes(StandardCharsets.UTF_8);
    }

    private static HttpResponse<String> post(HttpClient client, String base, byte[] body) throws IOException, InterruptedException {
        return client.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions")).timeout(Duration.ofMinutes(3))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofByteArray(body)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    private static void awaitReady(HttpClient client, String base, Process gateway, Path log) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (System.nanoTime() < deadline) {
            assertTrue(gateway.isAlive(), "the gateway exited:\n" + tail(log));
            try {
                if (client.send(HttpRequest.newBuilder(URI.create(base + "/q/health/ready")).timeout(Duration.ofSeconds(2)).build(),
                        HttpResponse.BodyHandlers.ofString()).statusCode() == 200) return;
            } catch (IOException e) {
                // not listening yet
            }
            Thread.sleep(200);
        }
        throw new AssertionError("the gateway was not ready in 120 s:\n" + tail(log));
    }

    private static String abbreviate(String s) {
        return s.length() > 300 ? s.substring(0, 300) + "..." : s;
    }

    private static String tail(Path log) {
        try {
            List<String> lines = Files.readAllLines(log);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 30), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }
}
