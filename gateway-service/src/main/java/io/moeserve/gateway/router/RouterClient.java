package io.moeserve.gateway.router;

import io.grpc.ChannelCredentials;
import io.grpc.InsecureChannelCredentials;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.moeserve.gateway.GatewaySettings;
import io.moeserve.proto.router.v1.DescribeModelRequest;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.proto.router.v1.ModelDescription;
import io.moeserve.proto.tls.GrpcTls;
import io.smallrye.mutiny.Uni;
import jakarta.annotation.PostConstruct;
import jakarta.annotation.PreDestroy;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.jboss.logging.Logger;

/**
 * The gRPC client of every router-service replica, balancing generations over them.
 *
 * <p>Design. The routers are {@code moe.gateway.router.targets}: fixed {@code host:port}s, or a {@code dns:///name:port}
 * whose addresses (a headless Service's ready pods) are resolved again every resolve-period, each address its own
 * target with its own channel; unset, the one router at {@code quarkus.grpc.clients.router.host:port}. gRPC's own
 * round_robin would spread calls evenly, but a generation lasts from milliseconds to minutes, so an even spread of
 * calls is an uneven spread of work: the choice here is least outstanding requests, the router with the fewest
 * generations in flight from this gateway, ties taken in turn so that an idle deployment still uses every router.
 * Only ready routers are chosen: one whose channel is failing (TRANSIENT_FAILURE), whose last DescribeModel probe
 * (every health-period) failed, or on which a call just failed for want of the router, is skipped until a probe
 * answers again. When no router is ready the least loaded one is tried anyway: its error says more than a refusal.
 * A call's caller passes the routers it has tried, so a retry goes to another one ({@code GenerationRun}).
 *
 * <p>Prefix affinity. Each router caches the KV-cache blocks of the prompts it has run (router-service's prefix
 * caching), so a prompt that starts like an earlier one is cheaper on the router that ran it. A prompt of at least
 * {@code prefix-affinity-tokens} tokens hashes its first that many tokens, and the router whose address scores
 * highest with that hash (rendezvous hashing: adding or losing a router moves only the prefixes that scored highest
 * on it) is preferred while it is ready, not yet tried, and has at most {@code prefix-affinity-slack} more
 * generations in flight than the least loaded choice; otherwise the least loaded choice stands. The n choices of a
 * request and the turns of a conversation (its earlier turns are the start of its prompt) so land together.
 *
 * <p>Generate uses the plain async stub rather than the Mutiny one: the Mutiny stub's Multi does not cancel the gRPC
 * call when it is cancelled (Quarkus' ClientCalls.oneToMany hands the emitter a plain StreamObserver), and a client
 * that goes away must end the router's sequence. Channels are built here, with {@link GrpcTls}'s credentials when
 * {@code moe.tls.enabled} (Quarkus' client reads its PEM files once, so a renewed certificate would need a restart,
 * where GrpcTls re-reads them); a dns:/// target's channels verify the certificate against the Service's name.
 */
@ApplicationScoped
public class RouterClient {
    private static final Logger LOG = Logger.getLogger(RouterClient.class);
    private static final String DNS = "dns:///";
    /** No prefix affinity: the prompt is too short, or affinity is off. */
    static final long NO_AFFINITY = 0;

    @Inject
    GatewaySettings settings;

    @Inject
    GrpcTls tls;

    @ConfigProperty(name = "quarkus.grpc.clients.router.host", defaultValue = "localhost")
    String host;

    @ConfigProperty(name = "quarkus.grpc.clients.router.port", defaultValue = "9081")
    int port;

    @ConfigProperty(name = "quarkus.grpc.clients.router.max-inbound-message-size", defaultValue = "67108864")
    int maxInboundMessageSize;

    /** Replaced whole on every change (resolution), read without a lock on every call. */
    private volatile List<RouterTarget> targets = List.of();
    private final AtomicInteger turn = new AtomicInteger();
    private final AtomicReference<Cached> description = new AtomicReference<>();
    private ScheduledExecutorService scheduler;

    private record Cached(ModelDescription value, long atNanos) {}

    @PostConstruct
    void start() {
        List<String> configured = settings.router().targets().orElse(List.of(host + ":" + port));
        List<String> fixed = new ArrayList<>();
        List<String> names = new ArrayList<>();
        for (String t : configured) {
            String target = t.trim();
            if (target.isEmpty()) continue;
            if (target.startsWith(DNS)) {
                names.add(target.substring(DNS.length()));
            } else {
                fixed.add(target);
            }
        }
        List<RouterTarget> initial = new ArrayList<>();
        for (String t : fixed) {
            HostPort hp = HostPort.parse(t);
            initial.add(new RouterTarget(t, channel(InetSocketAddress.createUnresolved(hp.host(), hp.port()), null)));
        }
        targets = List.copyOf(initial);
        scheduler = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread th = new Thread(r, "moe-gateway-routers");
            th.setDaemon(true);
            return th;
        });
        if (!names.isEmpty()) {
            resolve(fixed, names);
            long period = settings.router().resolvePeriod().toMillis();
            scheduler.scheduleWithFixedDelay(() -> resolve(fixed, names), period, period, TimeUnit.MILLISECONDS);
        }
        long health = settings.router().healthPeriod().toMillis();
        scheduler.scheduleWithFixedDelay(this::probe, health, health, TimeUnit.MILLISECONDS);
    }

    @PreDestroy
    synchronized void close() {
        if (scheduler != null) scheduler.shutdownNow();
        for (RouterTarget t : targets) if (t.channel != null) t.channel.shutdownNow();
    }

    private io.grpc.ManagedChannel channel(InetSocketAddress address, String authority) {
        ChannelCredentials credentials = tls != null && tls.enabled() ? tls.channelCredentials() : InsecureChannelCredentials.create();
        NettyChannelBuilder b = address.isUnresolved()
                ? NettyChannelBuilder.forAddress(address.getHostString(), address.getPort(), credentials)
                : NettyChannelBuilder.forAddress(address, credentials);
        if (authority != null) b.overrideAuthority(authority);
        return b.maxInboundMessageSize(maxInboundMessageSize)
                .keepAliveTime(30, TimeUnit.SECONDS)
                .keepAliveTimeout(10, TimeUnit.SECONDS)
                .build();
    }

    /**
     * Resolves the dns:/// names again: a new address gets a target, a vanished one is dropped and its channel shut
     * down once its calls end (they are already failing over if the router is gone). A name that does not resolve
     * keeps its targets: a DNS hiccup must not take every router away. The JVM caches answers for
     * networkaddress.cache.ttl (30 s by default), which bounds how soon a new router is seen.
     */
    private synchronized void resolve(List<String> fixed, List<String> names) {
        Map<String, RouterTarget> current = new LinkedHashMap<>();
        for (RouterTarget t : targets) current.put(t.address, t);
        Map<String, RouterTarget> next = new LinkedHashMap<>();
        for (String f : fixed) next.put(f, current.get(f));
        for (String name : names) {
            HostPort hp = HostPort.parse(name);
            InetAddress[] addresses;
            try {
                addresses = InetAddress.getAllByName(hp.host());
            } catch (UnknownHostException e) {
                LOG.warnf("Router name %s does not resolve (%s); keeping its %s", hp.host(), e.getMessage(),
                        current.keySet());
                for (RouterTarget t : current.values()) if (t.authority(name)) next.put(t.address, t);
                continue;
            }
            for (InetAddress a : addresses) {
                String key = a.getHostAddress() + ":" + hp.port();
                RouterTarget t = current.get(key);
                if (t == null) {
                    t = new RouterTarget(key, channel(new InetSocketAddress(a, hp.port()), name), name);
                    LOG.infof("Router %s (%s) added", key, name);
                }
                next.put(key, t);
            }
        }
        for (RouterTarget t : current.values()) {
            if (!next.containsKey(t.address)) {
                LOG.infof("Router %s removed: no longer resolves", t.address);
                t.channel.shutdown();
            }
        }
        targets = List.copyOf(next.values());
    }

    /** Asks every router DescribeModel; the answer makes it ready again, a failure not. */
    private void probe() {
        for (RouterTarget t : targets) {
            // describe(t) marks the router ready or not.
            describe(t).subscribe().with(d -> description.set(new Cached(d, System.nanoTime())), e -> { });
        }
    }

    // ---- choosing ----

    /**
     * Starts a Generate call on the ready router with the fewest generations in flight that is not in {@code tried},
     * and adds it there; false when every router has been tried. The call's listener hears the messages and the end.
     */
    public boolean generate(GenerateRequest request, Duration timeout, GenerationCall call, Set<String> tried) {
        GatewaySettings.RouterTargets r = settings.router();
        RouterTarget target = pick(targets, tried, turn.getAndIncrement(), affinity(request, r.prefixAffinityTokens()),
                r.prefixAffinitySlack());
        if (target == null) return false;
        tried.add(target.address);
        call.bind(target);
        try {
            target.stub.withDeadlineAfter(Math.max(1, timeout.toMillis()), TimeUnit.MILLISECONDS).generate(request, call);
        } catch (RuntimeException e) {
            call.release();
            throw e;
        }
        call.started();
        return true;
    }

    /**
     * Least outstanding requests among the ready routers not yet tried, ties broken by {@code turn} (round robin);
     * when none of those is ready, the same among the rest not yet tried; null when every router has been tried.
     */
    static RouterTarget pick(List<RouterTarget> targets, Set<String> tried, int turn) {
        RouterTarget best = pick(targets, tried, turn, true);
        return best != null ? best : pick(targets, tried, turn, false);
    }

    /**
     * As {@link #pick(List, Set, int)}, but the router that {@code affinity} prefers (highest rendezvous score) is
     * taken instead when it is ready, not tried, and within {@code slack} generations of the least loaded choice;
     * {@link #NO_AFFINITY}: the least loaded choice.
     */
    static RouterTarget pick(List<RouterTarget> targets, Set<String> tried, int turn, long affinity, int slack) {
        RouterTarget least = pick(targets, tried, turn);
        if (least == null || affinity == NO_AFFINITY) return least;
        RouterTarget preferred = null;
        long best = 0;
        for (RouterTarget t : targets) {
            long score = mix(affinity ^ t.addressHash);
            if (preferred == null || Long.compareUnsigned(score, best) > 0) {
                preferred = t;
                best = score;
            }
        }
        boolean usable = preferred != least && !tried.contains(preferred.address) && preferred.ready()
                && preferred.inFlight.get() <= least.inFlight.get() + slack;
        return usable ? preferred : least;
    }

    /** The prefix-affinity hash of a request's first {@code tokens} prompt tokens; NO_AFFINITY for shorter prompts or 0. */
    static long affinity(GenerateRequest request, int tokens) {
        if (tokens <= 0 || request.getPromptTokenIdsCount() < tokens) return NO_AFFINITY;
        long h = 0x6A09E667F3BCC908L;
        for (int i = 0; i < tokens; i++) h = mix(h ^ request.getPromptTokenIds(i));
        return h == NO_AFFINITY ? h + 1 : h;
    }

    /** MurmurHash3's 64-bit finalizer, with the golden ratio added so that 0 does not stay 0. */
    static long mix(long h) {
        h = (h + 0x9E3779B97F4A7C15L) ^ (h >>> 33);
        h *= 0xFF51AFD7ED558CCDL;
        h ^= h >>> 33;
        h *= 0xC4CEB9FE1A85EC53L;
        return h ^ (h >>> 33);
    }

    private static RouterTarget pick(List<RouterTarget> targets, Set<String> tried, int turn, boolean ready) {
        int n = targets.size();
        if (n == 0) return null;
        RouterTarget best = null;
        int bestLoad = Integer.MAX_VALUE;
        int start = Math.floorMod(turn, n);
        for (int i = 0; i < n; i++) {
            RouterTarget t = targets.get((start + i) % n);
            if (tried.contains(t.address) || (ready && !t.ready())) continue;
            int load = t.inFlight.get();
            if (load < bestLoad) {
                best = t;
                bestLoad = load;
            }
        }
        return best;
    }

    /** The routers as the gateway sees them, for readiness and logs. */
    public String summary() {
        List<RouterTarget> ts = targets;
        long ready = ts.stream().filter(RouterTarget::ready).count();
        return ready + " of " + ts.size() + " ready: " + ts;
    }

    // ---- the model ----

    /**
     * The routers' model description, reused for moe.gateway.describe-cache-ttl; when no router answers, the last
     * answer if there was one, else the failure as an OpenAiException (503 for an unreachable router).
     */
    public Uni<ModelDescription> describe() {
        Cached cached = description.get();
        if (cached != null && System.nanoTime() - cached.atNanos() < settings.describeCacheTtl().toNanos()) {
            return Uni.createFrom().item(cached.value());
        }
        return fetch()
                .onFailure().recoverWithUni(e -> cached != null
                        ? Uni.createFrom().item(cached.value())
                        : Uni.createFrom().failure(RouterErrors.translate(e)));
    }

    /** {@link #describe()} for a worker thread. */
    public ModelDescription description() {
        return describe().await().atMost(settings.describeTimeout().multipliedBy(Math.max(1, targets.size())).plusSeconds(1));
    }

    /**
     * A fresh DescribeModel answer from the first router that gives one, ready routers first; for readiness, and
     * kept for {@link #describe()}.
     */
    Uni<ModelDescription> fetch() {
        List<RouterTarget> order = new ArrayList<>();
        for (RouterTarget t : targets) if (t.ready()) order.add(t);
        for (RouterTarget t : targets) if (!t.ready()) order.add(t);
        if (order.isEmpty()) {
            return Uni.createFrom().failure(Status.UNAVAILABLE.withDescription("no router address resolved").asRuntimeException());
        }
        Uni<ModelDescription> chain = describe(order.getFirst());
        for (int i = 1; i < order.size(); i++) {
            RouterTarget next = order.get(i);
            chain = chain.onFailure().recoverWithUni(e -> describe(next));
        }
        return chain.onItem().invoke(d -> description.set(new Cached(d, System.nanoTime())));
    }

    private Uni<ModelDescription> describe(RouterTarget target) {
        return Uni.createFrom().emitter(emitter -> target.stub
                .withDeadlineAfter(settings.describeTimeout().toMillis(), TimeUnit.MILLISECONDS)
                .describeModel(DescribeModelRequest.getDefaultInstance(), new StreamObserver<>() {
                    @Override
                    public void onNext(ModelDescription value) {
                        target.answered();
                        emitter.complete(value);
                    }

                    @Override
                    public void onError(Throwable t) {
                        target.failed(Status.fromThrowable(t).toString());
                        emitter.fail(t);
                    }

                    @Override
                    public void onCompleted() {
                        // the value came with onNext
                    }
                }));
    }

    /** A {@code host:port} (IPv6 hosts in brackets). */
    record HostPort(String host, int port) {
        static HostPort parse(String s) {
            int colon = s.lastIndexOf(':');
            if (colon <= 0 || colon == s.length() - 1) {
                throw new IllegalArgumentException("moe.gateway.router.targets: '" + s + "' is not host:port");
            }
            String h = s.substring(0, colon);
            if (h.startsWith("[") && h.endsWith("]")) h = h.substring(1, h.length() - 1);
            try {
                return new HostPort(h, Integer.parseInt(s.substring(colon + 1)));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("moe.gateway.router.targets: '" + s + "' has no numeric port");
            }
        }
    }
}
