package io.moeserve.router;

import io.micrometer.core.instrument.MeterRegistry;
import io.moeserve.proto.ModelSettings;
import io.moeserve.proto.expert.v1.WireDType;
import io.moeserve.proto.tls.GrpcTls;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.expert.ExpertMaskListener;
import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.expert.ExpertSet;
import io.moeserve.runtime.expert.PartitionedExpertExecutor;
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import io.moeserve.runtime.model.ExpertSkipping;
import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.KvCacheDtype;
import io.moeserve.runtime.model.ModelOptions;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.PrunedExperts;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.Startup;
import jakarta.annotation.PostConstruct;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import org.jboss.logging.Logger;

/**
 * The model the router serves, loaded at start: the dense part in this process, the routed experts either here too
 * (mode local, all-in-one) or in the expert groups of the map (mode remote), found and watched by
 * {@link ExpertDiscovery}; plus the KV cache and the generation engine that runs it all.
 */
@Startup
@ApplicationScoped
public class ServedModel {
    private static final Logger LOG = Logger.getLogger(ServedModel.class);
    private static final int MAX_MESSAGE_BYTES = 256 << 20;

    @Inject
    ModelSettings model;
    @Inject
    RouterSettings settings;
    @Inject
    MeterRegistry registry;
    @Inject
    GrpcTls tls;

    private MoeModel moe;
    private KvCache cache;
    private GenerationEngine engine;
    private GenerateRequests requests;
    private RoutingStatistics stats;
    private ExpertDiscovery discovery;
    private ScheduledExecutorService retries;
    private final List<ExpertGroup> groups = new ArrayList<>();

    @PostConstruct
    void load() {
        long t0 = System.nanoTime();
        RouterSettings.Batching b = settings.batching();
        RouterSettings.Experts x = settings.experts();
        ModelConfig config = ConfigParser.load(model.path());
        int stepTokens = Math.max(b.maxStepTokens(), b.maxSequences());
        int maxContext = Math.min(b.maxContext(), config.maxPositionEmbeddings());
        Parallel parallel = Parallel.shared();
        RouterSettings.ExpertSkipping skip = settings.expertSkipping();
        ModelOptions options = new ModelOptions(stepTokens, maxContext, new CpuMatmulKernels(parallel), parallel, ExpertSelection.ALL, null)
                .withSkipping(new ExpertSkipping(skip.threshold(), skip.protectFraction()))
                .withPrunedExperts(PrunedExperts.parse(settings.prunedExperts().orElse("")))
                .withKvCacheDtype(kvCacheDtype(b))
                .withInt8Activations(ModelOptions.int8Activations("moe.router.activations", settings.activations()));
        List<String> names = new ArrayList<>();
        List<ExpertSet> sets = new ArrayList<>();
        if (x.mode() == RouterSettings.Mode.remote) {
            if (x.groups().isEmpty()) {
                throw new IllegalStateException("moe.router.experts.mode=remote needs expert groups: "
                        + "moe.router.experts.groups.<name>.hosts and .endpoints");
            }
            for (Map.Entry<String, RouterSettings.Group> e : new TreeMap<>(x.groups()).entrySet()) {
                ExpertSet set = ExpertSet.parse(e.getValue().hosts()).validate(config);
                groups.add(new ExpertGroup(e.getKey(), set, e.getValue().endpoints()));
                sets.add(set);
                names.add(e.getKey());
            }
        }
        RouterMetrics metrics = new RouterMetrics(registry, names, () -> engine == null ? 0 : engine.runningCount(),
                () -> engine == null ? 0 : engine.waitingCount(), () -> engine == null ? 0 : engine.freeKvTokens(),
                () -> engine == null ? 0 : engine.usedKvBlocks(), () -> engine == null ? 0 : engine.freeKvBlocks());
        if (!groups.isEmpty()) {
            retries = Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform().name("expert-retry").daemon().unstarted(r));
            WireDType wire = x.wireDtype() == RouterSettings.WireFormat.bf16 ? WireDType.WIRE_DTYPE_BF16 : WireDType.WIRE_DTYPE_F32;
            GrpcExpertDispatcher dispatcher = new GrpcExpertDispatcher(groups, model.resolvedId(), x.routingTableVersion(), wire,
                    config.hiddenSize(), x.callTimeout(), x.callTimeoutPerToken(), x.maxAttempts(), x.failureBackoff(),
                    metrics, retries, x.transport() == RouterSettings.Transport.stream, x.microBatches(),
                    java.time.Duration.ofNanos(x.spinWaitMicros() * 1000L), parallel::wake);
            // The engine exists by the first step, which is the first time the listener can be called.
            ExpertMaskListener masking = x.degradedMode() == RouterSettings.DegradedMode.fail ? null
                    : (layer, group, row, pairs) -> {
                        metrics.expertMasked(group, pairs);
                        engine.masked(row, pairs);
                    };
            options = options.withExecutor(ExpertSelection.NONE,
                    store -> new PartitionedExpertExecutor(config, sets, names, dispatcher, stepTokens, masking))
                    .withMicroBatches(x.microBatches(), x.microBatchMinTokens());
            discovery = new ExpertDiscovery(groups, model.resolvedId(), x.routingTableVersion(), config, MAX_MESSAGE_BYTES,
                    x.refreshInterval(), x.transportThreads(), tls.channelCredentials());
        }
        moe = MoeModel.load(model.path(), options);
        long kvBytes = b.kvCacheMemory().asLongValue();
        long heap = Runtime.getRuntime().maxMemory();
        if (kvBytes > heap * 0.7) {
            moe.close();
            throw new IllegalStateException("moe.router.batching.kv-cache-memory=" + kvBytes / 1048576 + "M does not fit the Java heap ("
                    + heap / 1048576 + "M max, the cache may use 70% of it): lower it or raise -Xmx");
        }
        cache = newKvCache(moe, kvBytes, b.maxSequences());
        if (settings.prefixCaching().enabled()) cache.enablePrefixCaching();
        stats = new RoutingStatistics(moe.config(), registry);
        requests = new GenerateRequests(model.resolvedId(), moe.config().vocabSize(), moe.maxContext(), moe.config().eosTokenIds(),
                cache.blockSize(), cache.totalBlocks(), new TokenStream(metrics, moe.config().vocabSize()),
                new GrammarCache(model.path(), moe.config().vocabSize()));
        engine = new GenerationEngine(moe, cache, b.maxSequences(), b.maxQueued(), b.retryAfter(), b.kvCacheWatermark(), stats, metrics);
        if ((long) cache.totalBlocks() * cache.blockSize() < moe.maxContext()) {
            LOG.warnf("the KV cache (%d tokens) is shorter than the context (%d): a request whose prompt + max_new_tokens exceeds it is "
                    + "refused; raise moe.router.batching.kv-cache-memory", (long) cache.totalBlocks() * cache.blockSize(), moe.maxContext());
        }
        if (cache.prefixCaching()) {
            RouterMetrics.prefixCache(registry, engine);
        }
        if (discovery != null) discovery.start();
        engine.start();
        LOG.infof("serving %s as '%s' (%s): experts %s, %d-token steps, %d sequences, KV cache %d tokens (%.0f MiB of %s, prefix caching %s),"
                        + " context %d, loaded in %.1f s",
                model.path(), model.resolvedId(), moe.config().architecture().hfClassName(),
                x.mode() == RouterSettings.Mode.local ? "in this process" : "in groups " + names,
                stepTokens, b.maxSequences(), (long) cache.totalBlocks() * cache.blockSize(),
                cache.bytes() / 1048576.0, cache.dtype(), cache.prefixCaching() ? "on" : "off", moe.maxContext(),
                (System.nanoTime() - t0) / 1e9);
    }

    /**
     * A KV cache of as many positions as {@code kvBytes} holds in the model's KV cache dtype: a BF16 position takes half
     * an F32 one's bytes, so the same memory setting gives twice the blocks, and admission, which counts blocks, admits
     * about twice the sequences.
     */
    static KvCache newKvCache(MoeModel moe, long kvBytes, int maxSequences) {
        long budget = kvBytes / KvCache.bytesPerToken(moe.config(), moe.options().kvCacheDtype());
        return moe.newKvCache((int) Math.min(Integer.MAX_VALUE, budget), maxSequences);
    }

    private static KvCacheDtype kvCacheDtype(RouterSettings.Batching b) {
        try {
            return KvCacheDtype.parse(b.kvCacheDtype());
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException("moe.router.batching.kv-cache-dtype: " + e.getMessage(), e);
        }
    }

    void onShutdown(@Observes ShutdownEvent event) {
        if (engine != null) engine.close();
        if (discovery != null) discovery.close();
        if (retries != null) retries.shutdownNow();
        if (moe != null) moe.close();
    }

    MoeModel model() {
        return moe;
    }

    KvCache cache() {
        return cache;
    }

    GenerationEngine engine() {
        return engine;
    }

    GenerateRequests requests() {
        return requests;
    }

    RoutingStatistics statistics() {
        return stats;
    }

    List<ExpertGroup> groups() {
        return groups;
    }

    String modelId() {
        return model.resolvedId();
    }

    long routingTableVersion() {
        return settings.experts().routingTableVersion();
    }

    /** Checkpoint directory (for the created time). */
    java.nio.file.Path modelPath() {
        return model.path();
    }
}
