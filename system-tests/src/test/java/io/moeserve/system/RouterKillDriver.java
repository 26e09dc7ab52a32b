package io.moeserve.system;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moeserve.runtime.family.Architecture;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * The router-kill scenario of issue 13, shared by {@link RouterFailoverIT} and run alone as a benchmark: a gateway
 * over two all-in-one routers, streams of greedy chat completions read chunk by chunk through SSE, and one router
 * killed with SIGKILL while they run. What a client sees is recorded per stream: status, text, an error event if
 * one came, and when each chunk arrived.
 *
 * <p>As a benchmark ({@code scripts/bench-router-kill.sh [MODEL] [SECONDS] [STREAMS]}): after one round of STREAMS
 * streams to warm up, STREAMS clients each send one stream after another for SECONDS; router a is killed halfway.
 * Prints the requests, the failures, and the longest gap between two chunks of a stream that was running at the
 * kill, beside the longest gap of any stream that was not, as a Markdown row for BENCHMARKS.md.
 */
public final class RouterKillDriver implements AutoCloseable {
    static final String MODEL_ID = "mixtral";
    static final int MAX_TOKENS = 48;
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private static final String MASKED_COMMENT = ": x-moe-degraded masked-experts=";

    final Path model;
    final ServiceProcess routerA;
    final ServiceProcess routerB;
    final ServiceProcess gateway;
    private final List<ServiceProcess> others = new ArrayList<>();

    /** Starts two all-in-one routers and a gateway over both (the caller awaits readiness). */
    RouterKillDriver(Path model, int threads) {
        this.model = model;
        routerA = startRouter(model, "router-a", threads);
        routerB = startRouter(model, "router-b", threads);
        gateway = startGateway("gateway", Map.of("moe.gateway.router.health-period", "500ms"));
    }

    private static ServiceProcess startRouter(Path model, String name, int threads) {
        Map<String, String> c = new HashMap<>();
        c.put("moe.model.path", model.toString());
        c.put("moe.model.id", MODEL_ID);
        c.put("moe.router.experts.mode", "local");
        c.put("moe.router.batching.max-context", "512");
        c.put("moe.router.batching.kv-cache-memory", "64M");
        c.put("moe.threads", Integer.toString(threads));
        return ServiceProcess.start(name, "router-service", c);
    }

    /** A gateway whose targets are both routers, a before b; closed with the driver. */
    ServiceProcess startGateway(String name, Map<String, String> extra) {
        Map<String, String> g = new HashMap<>();
        g.put("moe.model.path", model.toString());
        g.put("moe.model.id", MODEL_ID);
        g.put("moe.gateway.router.targets", "127.0.0.1:" + routerA.grpcPort + ",127.0.0.1:" + routerB.grpcPort);
        g.putAll(extra);
        ServiceProcess p = ServiceProcess.start(name, "gateway-service", g);
        if (gateway != null) others.add(p);
        return p;
    }

    void awaitReady() {
        for (ServiceProcess p : List.of(routerA, routerB, gateway)) p.awaitReady(Deployment.START);
        for (ServiceProcess p : others) p.awaitReady(Deployment.START);
    }

    static String prompt(int i) {
        return "Stream " + i + " tells the story of router number " + (i * 7 + 3) + " and its experts";
    }

    /**
     * What one request gave the client; {@code masked} is the count of the stream's closing
     * {@code : x-moe-degraded masked-experts=N} comment (degraded mode), 0 without one.
     */
    record Outcome(int status, String text, String error, boolean done, List<Long> chunkNanos, long masked) {
        boolean ok() {
            return status == 200 && error == null && done;
        }

        /** Longest time between two consecutive chunks, in ms. */
        double longestGapMs() {
            long max = 0;
            for (int i = 1; i < chunkNanos.size(); i++) max = Math.max(max, chunkNanos.get(i) - chunkNanos.get(i - 1));
            return max / 1e6;
        }

        /** Whether the stream's chunks span {@code nanos}. */
        boolean spans(long nanos) {
            return !chunkNanos.isEmpty() && chunkNanos.getFirst() < nanos && chunkNanos.getLast() > nanos;
        }
    }

    private static String chat(int i, boolean stream) {
        return "{\"model\":\"" + MODEL_ID + "\",\"messages\":[{\"role\":\"user\",\"content\":" + quote(prompt(i)) + "}],"
                + "\"max_tokens\":" + MAX_TOKENS + ",\"temperature\":0,\"ignore_eos\":true,\"stream\":" + stream + "}";
    }

    /**
     * A streamed greedy chat completion of {@code prompt(i)}; {@code onChunk} hears the count of chunks so far (the
     * first is the role chunk, sent once the first token is: a synthetic model's tokens may have no text, so content
     * chunks can be rare).
     */
    static Outcome stream(ServiceProcess gateway, int i, Consumer<Integer> onChunk) {
        String body = chat(i, true);
        HttpRequest r = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + gateway.httpPort + "/v1/chat/completions"))
                .timeout(Duration.ofSeconds(120)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build();
        try {
            HttpResponse<Stream<String>> response = HTTP.send(r, HttpResponse.BodyHandlers.ofLines());
            StringBuilder text = new StringBuilder();
            List<Long> times = new ArrayList<>();
            String error = null;
            boolean done = false;
            long masked = 0;
            StringBuilder refusal = new StringBuilder();
            for (String line : (Iterable<String>) response.body()::iterator) {
                if (response.statusCode() != 200) {
                    refusal.append(line);
                    continue;
                }
                if (line.startsWith(MASKED_COMMENT)) masked = Long.parseLong(line.substring(MASKED_COMMENT.length()).trim());
                if (!line.startsWith("data: ")) continue;
                String data = line.substring(6);
                if (data.equals("[DONE]")) {
                    done = true;
                    continue;
                }
                JsonNode chunk = JSON.readTree(data);
                if (chunk.has("error")) {
                    error = chunk.get("error").toString();
                    continue;
                }
                times.add(System.nanoTime());
                text.append(chunk.at("/choices/0/delta/content").asText(""));
                onChunk.accept(times.size());
            }
            if (response.statusCode() != 200) error = "HTTP " + response.statusCode() + " " + refusal;
            return new Outcome(response.statusCode(), text.toString(), error, done, times, masked);
        } catch (IOException e) {
            return new Outcome(0, "", e.toString(), false, List.of(), 0);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** A whole (not streamed) greedy chat completion of {@code prompt(i)}: status and content. */
    static Outcome complete(ServiceProcess gateway, int i) {
        String body = chat(i, false);
        HttpRequest r = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + gateway.httpPort + "/v1/chat/completions"))
                .timeout(Duration.ofSeconds(120)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build();
        try {
            HttpResponse<String> response = HTTP.send(r, HttpResponse.BodyHandlers.ofString());
            if (response.statusCode() != 200) return new Outcome(response.statusCode(), "", response.body(), false, List.of(), 0);
            return new Outcome(200, JSON.readTree(response.body()).at("/choices/0/message/content").asText(), null, true, List.of(), 0);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    private static String quote(String s) {
        try {
            return JSON.writeValueAsString(s);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public void close() {
        for (ServiceProcess p : others) p.close();
        gateway.close();
        routerA.close();
        routerB.close();
    }

    /**
     * What a timed load gave: every request's outcome, and when its event happened ({@link System#nanoTime()}).
     * Rows for BENCHMARKS.md are read from it: failures, and the longest gap between two chunks of the streams whose
     * chunks span the event beside the longest of any other stream.
     */
    record Load(List<Outcome> outcomes, long eventNanos) {
        long failures() {
            return outcomes.stream().filter(o -> !o.ok()).count();
        }

        long spanning() {
            return outcomes.stream().filter(o -> o.spans(eventNanos)).count();
        }

        double longestGapAcrossMs() {
            return outcomes.stream().filter(o -> o.spans(eventNanos)).mapToDouble(Outcome::longestGapMs).max().orElse(0);
        }

        double longestGapElsewhereMs() {
            return outcomes.stream().filter(o -> !o.spans(eventNanos)).mapToDouble(Outcome::longestGapMs).max().orElse(0);
        }
    }

    /**
     * After one round of {@code streams} streams to warm up (not counted: the JIT compiles the hot paths of every
     * service), {@code streams} clients send one streamed completion after another through {@code gateway} for
     * {@code seconds}; {@code event} runs halfway, and its start is the load's event time.
     */
    static Load load(ServiceProcess gateway, int streams, int seconds, Runnable event) throws Exception {
        ExecutorService warm = Executors.newFixedThreadPool(streams);
        List<Future<Outcome>> warming = new ArrayList<>();
        for (int c = 0; c < streams; c++) {
            int client = c;
            warming.add(warm.submit(() -> stream(gateway, client, n -> { })));
        }
        for (Future<Outcome> f : warming) f.get();
        warm.shutdown();
        long end = System.nanoTime() + seconds * 1_000_000_000L;
        AtomicBoolean stop = new AtomicBoolean();
        List<Outcome> outcomes = java.util.Collections.synchronizedList(new ArrayList<>());
        ExecutorService pool = Executors.newFixedThreadPool(streams);
        List<Future<?>> clients = new ArrayList<>();
        for (int c = 0; c < streams; c++) {
            int client = c;
            clients.add(pool.submit(() -> {
                for (int k = 0; !stop.get(); k++) outcomes.add(stream(gateway, client + streams * (k % 4), n -> { }));
            }));
        }
        Thread.sleep(seconds * 500L);
        long eventNanos = System.nanoTime();
        event.run();
        Thread.sleep(Math.max(0, (end - System.nanoTime()) / 1_000_000));
        stop.set(true);
        for (Future<?> f : clients) f.get();
        pool.shutdown();
        return new Load(List.copyOf(outcomes), eventNanos);
    }

    /** The benchmark: see the class comment. */
    public static void main(String[] args) throws Exception {
        Path model = args.length > 0 && !args[0].isEmpty() ? Path.of(args[0]).toAbsolutePath() : Models.small(Architecture.MIXTRAL);
        int seconds = args.length > 1 ? Integer.parseInt(args[1]) : 20;
        int streams = args.length > 2 ? Integer.parseInt(args[2]) : 8;
        try (RouterKillDriver d = new RouterKillDriver(model, 1)) {
            d.awaitReady();
            Load l = load(d.gateway, streams, seconds, d.routerA::kill);
            System.out.printf(Locale.ROOT, "| kill -9 one of 2 routers, %d streams, %d s | %d | %d | %d streams across the kill, longest gap %.0f ms"
                    + " (%.0f ms elsewhere) |%n", streams, seconds, l.outcomes().size(), l.failures(), l.spanning(), l.longestGapAcrossMs(),
                    l.longestGapElsewhereMs());
            for (Outcome o : l.outcomes()) if (!o.ok()) System.out.println("failed: " + o.status() + " " + o.error());
        }
    }
}
