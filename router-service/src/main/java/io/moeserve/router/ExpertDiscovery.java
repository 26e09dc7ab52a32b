package io.moeserve.router;

import io.grpc.ChannelCredentials;
import io.grpc.stub.StreamObserver;
import io.moeserve.proto.expert.v1.DescribePodRequest;
import io.moeserve.proto.expert.v1.HostedLayer;
import io.moeserve.proto.expert.v1.PodDescription;
import io.moeserve.proto.expert.v1.ServingState;
import io.moeserve.runtime.config.ModelConfig;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.jboss.logging.Logger;

/**
 * Finds each group's pods and keeps checking them: re-resolves the endpoints every refresh interval (a
 * {@code dns:} endpoint yields every address of the name, which for a headless Kubernetes Service is every ready
 * pod), opens a channel to each new pod and closes those that vanished, and describes every pod (DescribePod) to
 * learn whether it is ready, draining or loading, and whether it really serves this model, routing-table version and
 * every expert the map gives its group. A pod that does not is never sent a call: a wrong map would otherwise
 * compute with the wrong weights, or fail every step.
 */
final class ExpertDiscovery implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(ExpertDiscovery.class);
    private static final long PROBE_DEADLINE_MS = 2000;

    private final List<ExpertGroup> groups;
    private final String modelId;
    private final long routingTableVersion;
    private final ModelConfig config;
    private final int maxMessageBytes;
    private final Duration refreshInterval;
    private final Map<ExpertGroup, Map<String, ExpertReplica>> current = new HashMap<>();
    private final ScheduledExecutorService scheduler;
    private final EventLoopGroup transport;
    private final ChannelCredentials credentials;

    ExpertDiscovery(List<ExpertGroup> groups, String modelId, long routingTableVersion, ModelConfig config,
                    int maxMessageBytes, Duration refreshInterval, int transportThreads, ChannelCredentials credentials) {
        this.groups = groups;
        this.credentials = credentials;
        this.modelId = modelId;
        this.routingTableVersion = routingTableVersion;
        this.config = config;
        this.maxMessageBytes = maxMessageBytes;
        this.refreshInterval = refreshInterval;
        if (transportThreads < 1) throw new IllegalArgumentException("moe.router.experts.transport-threads must be at least 1, got "
                + transportThreads);
        // DNS answers are cached for RouterMain.DNS_TTL_SECONDS (set before the JVM's resolver first runs).
        this.scheduler = Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform().name("expert-discovery").daemon().unstarted(r));
        this.transport = new NioEventLoopGroup(transportThreads, new DefaultThreadFactory("expert-transport", true));
    }

    void start() {
        refresh();
        long ms = Math.max(100, refreshInterval.toMillis());
        scheduler.scheduleWithFixedDelay(this::refreshQuietly, ms, ms, TimeUnit.MILLISECONDS);
    }

    private void refreshQuietly() {
        try {
            refresh();
        } catch (RuntimeException e) {
            LOG.warnf(e, "refreshing expert pods failed");
        }
    }

    /** Re-resolves every group's endpoints, updates its replicas, and probes them all. */
    synchronized void refresh() {
        for (ExpertGroup g : groups) {
            Map<String, ExpertReplica> known = current.computeIfAbsent(g, k -> new HashMap<>());
            Set<String> wanted = new LinkedHashSet<>();
            for (String endpoint : g.endpoints) {
                try {
                    wanted.addAll(resolve(endpoint));
                } catch (UnknownHostException e) {
                    // A failed lookup keeps the pods we had for it: DNS blips must not empty a group.
                    for (ExpertReplica r : known.values()) if (r.address.endsWith(":" + port(endpoint))) wanted.add(r.address);
                    LOG.debugf("cannot resolve %s for expert group %s: %s", endpoint, g.name, e.getMessage());
                }
            }
            boolean changed = false;
            for (String address : wanted) {
                if (!known.containsKey(address)) {
                    int colon = address.lastIndexOf(':');
                    String host = address.substring(0, colon);
                    if (host.startsWith("[")) host = host.substring(1, host.length() - 1);
                    known.put(address, new ExpertReplica(host, Integer.parseInt(address.substring(colon + 1)), maxMessageBytes, transport,
                            credentials));
                    changed = true;
                    LOG.infof("expert group %s: new pod %s", g.name, address);
                }
            }
            for (var it = known.entrySet().iterator(); it.hasNext(); ) {
                var e = it.next();
                if (!wanted.contains(e.getKey())) {
                    e.getValue().close();
                    it.remove();
                    changed = true;
                    LOG.infof("expert group %s: pod %s is gone", g.name, e.getKey());
                }
            }
            if (changed) g.setReplicas(new ArrayList<>(known.values()));
            for (ExpertReplica r : g.replicas()) probe(g, r);
        }
    }

    /** {@code host:port} as it is; {@code dns:name:port} as every address the name has now. */
    static List<String> resolve(String endpoint) throws UnknownHostException {
        String e = endpoint.trim();
        if (!e.startsWith("dns:")) {
            port(e);
            return List.of(e);
        }
        String rest = e.substring(4);
        while (rest.startsWith("/")) rest = rest.substring(1);
        int colon = rest.lastIndexOf(':');
        if (colon <= 0) throw new IllegalArgumentException("endpoint " + endpoint + " must be dns:name:port");
        int port = port(rest);
        List<String> out = new ArrayList<>();
        for (InetAddress a : InetAddress.getAllByName(rest.substring(0, colon))) {
            String host = a.getHostAddress();
            out.add((host.contains(":") ? "[" + host + "]" : host) + ":" + port);
        }
        out.sort(null);
        return out;
    }

    private static int port(String hostPort) {
        int colon = hostPort.lastIndexOf(':');
        try {
            int p = Integer.parseInt(hostPort.substring(colon + 1));
            if (colon <= 0 || p <= 0 || p > 65535) throw new NumberFormatException();
            return p;
        } catch (NumberFormatException ex) {
            throw new IllegalArgumentException("endpoint '" + hostPort + "' must be host:port or dns:name:port");
        }
    }

    private void probe(ExpertGroup g, ExpertReplica r) {
        r.stub.withDeadlineAfter(PROBE_DEADLINE_MS, TimeUnit.MILLISECONDS).describePod(DescribePodRequest.getDefaultInstance(),
                new StreamObserver<>() {
                    @Override
                    public void onNext(PodDescription d) {
                        described(g, r, d);
                    }

                    @Override
                    public void onError(Throwable t) {
                        // A pod restarted on the same address should be found at the next probe, not after gRPC's
                        // reconnect back-off (which grows to minutes).
                        r.channel.resetConnectBackoff();
                        if (r.health != ExpertReplica.Health.MISCONFIGURED) {
                            r.health = ExpertReplica.Health.FAILED;
                            r.lastProblem = "not answering: " + io.grpc.Status.fromThrowable(t);
                        }
                    }

                    @Override
                    public void onCompleted() {
                    }
                });
    }

    private void described(ExpertGroup g, ExpertReplica r, PodDescription d) {
        r.podName = d.getPodName();
        r.reportedQueuedTokens = d.getLoad().getQueuedTokens();
        String problem = mismatch(g, d);
        if (problem != null) {
            if (r.health != ExpertReplica.Health.MISCONFIGURED || !problem.equals(r.lastProblem)) {
                LOG.errorf("expert group %s: pod %s is not used: %s", g.name, r, problem);
            }
            r.health = ExpertReplica.Health.MISCONFIGURED;
            r.lastProblem = problem;
            return;
        }
        ExpertReplica.Health was = r.health;
        r.health = switch (d.getState()) {
            case SERVING_STATE_SERVING -> ExpertReplica.Health.READY;
            case SERVING_STATE_DRAINING -> ExpertReplica.Health.DRAINING;
            default -> ExpertReplica.Health.PROBING;
        };
        if (r.health == ExpertReplica.Health.READY) r.avoidUntilNanos = System.nanoTime();
        // A draining pod waits for its open streams before it stops, and once a probe has seen it draining no call
        // goes there to hear so (the case ExpertReplica.recordFailure handles): end our stream now.
        if (r.health == ExpertReplica.Health.DRAINING) r.stream.close();
        if (was != r.health) LOG.infof("expert group %s: pod %s is %s", g.name, r, r.health.name().toLowerCase());
    }

    /** Why the pod cannot serve the group, or null. */
    private String mismatch(ExpertGroup g, PodDescription d) {
        if (d.getState() == ServingState.SERVING_STATE_LOADING) return null; // nothing to check yet
        if (!d.getModelId().equals(modelId)) return "it serves model '" + d.getModelId() + "', not '" + modelId + "'";
        if (d.getRoutingTableVersion() != 0 && d.getRoutingTableVersion() != routingTableVersion) {
            return "it serves routing table version " + d.getRoutingTableVersion() + ", the router uses " + routingTableVersion;
        }
        if (d.getHiddenSize() != config.hiddenSize()) return "its model has hidden size " + d.getHiddenSize();
        BitSet[] hosted = new BitSet[config.numLayers()];
        for (HostedLayer l : d.getLayersList()) {
            if (l.getLayer() >= hosted.length) continue;
            hosted[l.getLayer()] = new BitSet();
            for (int e : l.getExpertsList()) hosted[l.getLayer()].set(e);
        }
        for (int layer = 0; layer < config.numLayers(); layer++) {
            if (!config.isSparse(layer)) continue;
            for (int e = 0; e < config.moe().numFfnExperts(); e++) {
                if (g.hosts.hosts(layer, e) && (hosted[layer] == null || !hosted[layer].get(e))) {
                    return "the map gives its group expert " + e + " of layer " + layer + " (" + g.hosts.spec()
                            + ") but the pod does not host it";
                }
            }
        }
        return null;
    }

    @Override
    public synchronized void close() {
        scheduler.shutdownNow();
        for (Map<String, ExpertReplica> m : current.values()) m.values().forEach(ExpertReplica::close);
        transport.shutdownGracefully(0, 1, TimeUnit.SECONDS);
        current.clear();
    }
}
