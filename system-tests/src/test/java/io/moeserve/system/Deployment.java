package io.moeserve.system;

import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.proto.router.v1.RouterServiceGrpc;
import io.moeserve.proto.router.v1.SamplingParameters;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * A router with expert groups in their own processes, as run.sh starts them: groups by name, each with its
 * placement spec and any number of replicas. Closing it stops every process.
 */
final class Deployment implements AutoCloseable {
    /** How long a process may take to become ready; benchmarks that start many at once on a small machine raise it. */
    static final Duration START = Duration.ofSeconds(Long.getLong("moe.start-seconds", 120));

    final Path model;
    final String modelId;
    final Map<String, List<ServiceProcess>> experts = new LinkedHashMap<>();
    final Map<String, String> hosts = new LinkedHashMap<>();
    ServiceProcess router;
    /** The port the router dials for a pod where it is not the pod's own: a delay relay in between. */
    private final Map<ServiceProcess, Integer> dialPorts = new HashMap<>();
    private final List<DelayRelay> relays = new ArrayList<>();
    private ManagedChannel channel;
    private RouterServiceGrpc.RouterServiceBlockingStub stub;

    /** Threads per process in benchmarks: every process may use every core, as it would alone on its machine. */
    static final int BENCHMARK_THREADS = Runtime.getRuntime().availableProcessors();
    private final int threads;

    /** Tests: one kernel thread per process, so several processes share the machine's cores without contention. */
    Deployment(Path model, String modelId) {
        this(model, modelId, 1);
    }

    Deployment(Path model, String modelId, int threads) {
        this.model = model;
        this.modelId = modelId;
        this.threads = threads;
    }

    ServiceProcess startExpert(String group, String spec) {
        return startExpert(group, spec, Map.of());
    }

    ServiceProcess startExpert(String group, String spec, Map<String, String> extra) {
        hosts.put(group, spec);
        Map<String, String> c = new HashMap<>();
        c.put("moe.model.path", model.toString());
        c.put("moe.model.id", modelId);
        c.put("moe.expert.hosts", spec);
        c.put("moe.expert.group", group);
        c.put("moe.expert.routing-table-version", "1");
        c.put("moe.threads", Integer.toString(threads));
        c.putAll(extra);
        ServiceProcess p = ServiceProcess.start("expert-" + group, "expert-service", c);
        experts.computeIfAbsent(group, g -> new ArrayList<>()).add(p);
        return p;
    }

    /**
     * Puts a {@link DelayRelay} between every pod started so far and the routers started after this: each byte
     * between them is delayed {@code oneWayMicros} (plus up to {@code jitterMicros}) in each direction.
     */
    void delayPods(long oneWayMicros, long jitterMicros) throws IOException {
        for (List<ServiceProcess> ps : experts.values()) {
            for (ServiceProcess p : ps) {
                DelayRelay relay = new DelayRelay(new InetSocketAddress(InetAddress.getLoopbackAddress(), p.grpcPort), oneWayMicros, jitterMicros);
                relays.add(relay);
                dialPorts.put(p, relay.port());
            }
        }
    }

    /** Starts the router in remote mode over the expert groups started so far (endpoints listed statically). */
    ServiceProcess startRouter(Map<String, String> extra) {
        router = startAnotherRouter("router", extra);
        return router;
    }

    /** Starts one more router over the same groups, not the one {@link #stub} talks to; the caller closes it. */
    ServiceProcess startAnotherRouter(String name, Map<String, String> extra) {
        Map<String, String> c = new HashMap<>();
        c.put("moe.model.path", model.toString());
        c.put("moe.model.id", modelId);
        c.put("moe.router.experts.mode", "remote");
        c.put("moe.router.experts.refresh-interval", "500ms");
        c.put("moe.router.batching.max-context", "512");
        c.put("moe.router.batching.kv-cache-memory", "64M");
        for (var e : experts.entrySet()) {
            c.put("moe.router.experts.groups." + e.getKey() + ".hosts", hosts.get(e.getKey()));
            c.put("moe.router.experts.groups." + e.getKey() + ".endpoints",
                    String.join(",", e.getValue().stream().map(p -> "127.0.0.1:" + dialPorts.getOrDefault(p, p.grpcPort)).toList()));
        }
        c.put("moe.threads", Integer.toString(threads));
        c.putAll(extra);
        return ServiceProcess.start(name, "router-service", c);
    }

    void awaitReady() {
        for (List<ServiceProcess> ps : experts.values()) for (ServiceProcess p : ps) p.awaitReady(START);
        router.awaitReady(START);
        channel = ManagedChannelBuilder.forAddress("127.0.0.1", router.grpcPort).usePlaintext().build();
        stub = RouterServiceGrpc.newBlockingStub(channel);
    }

    /** The channel to the router, open once {@link #awaitReady} returned. */
    ManagedChannel channel() {
        return channel;
    }

    RouterServiceGrpc.RouterServiceBlockingStub stub() {
        return stub.withDeadlineAfter(120, TimeUnit.SECONDS);
    }

    static GenerateRequest greedy(String modelId, int[] prompt, int maxNew) {
        GenerateRequest.Builder b = GenerateRequest.newBuilder().setModelId(modelId).setMaxNewTokens(maxNew).setIgnoreEos(true)
                .setSampling(SamplingParameters.newBuilder().setTemperature(0));
        for (int t : prompt) b.addPromptTokenIds(t);
        return b.build();
    }

    int[] generate(int[] prompt, int maxNew) {
        List<Integer> out = new ArrayList<>();
        stub().generate(greedy(modelId, prompt, maxNew)).forEachRemaining((GenerateResponse r) -> out.addAll(r.getTokenIdsList()));
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    @Override
    public void close() {
        if (channel != null) channel.shutdownNow();
        if (router != null) router.close();
        for (List<ServiceProcess> ps : experts.values()) for (ServiceProcess p : ps) p.close();
        relays.forEach(DelayRelay::close);
    }
}
