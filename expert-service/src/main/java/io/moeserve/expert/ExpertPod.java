package io.moeserve.expert;

import io.micrometer.core.instrument.MeterRegistry;
import io.moeserve.proto.ModelSettings;
import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.expert.CheckpointExpertStore;
import io.moeserve.runtime.expert.ExpertExecutor;
import io.moeserve.runtime.expert.ExpertLoader;
import io.moeserve.runtime.expert.ExpertSet;
import io.moeserve.runtime.expert.ExpertWeights;
import io.moeserve.runtime.expert.LocalExpertExecutor;
import io.moeserve.runtime.expert.OffloadingExpertExecutor;
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.PanelKernel;
import io.moeserve.runtime.kernel.Parallel;
import io.moeserve.runtime.model.ModelOptions;
import io.moeserve.runtime.quantize.TargetFormat;
import io.moeserve.runtime.quantize.WeightQuantizer;
import io.moeserve.runtime.tensor.WeightMatrix;
import io.quarkus.runtime.Quarkus;
import io.quarkus.runtime.ShutdownDelayInitiatedEvent;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import java.lang.foreign.Arena;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.jboss.logging.Logger;

/**
 * The pod's lifecycle: loads its experts in the background at start (health answers meanwhile, readiness says
 * "loading"), serves, and on shutdown drains: it refuses new calls with UNAVAILABLE (so routers retry another
 * replica at once), lets the calls in flight finish, then lets the process exit.
 */
@ApplicationScoped
public class ExpertPod {
    private static final Logger LOG = Logger.getLogger(ExpertPod.class);

    /** Where the pod is in its life. */
    public enum State { LOADING, SERVING, DRAINING }

    @Inject
    ModelSettings model;
    @Inject
    ExpertPodSettings settings;
    @Inject
    MeterRegistry registry;
    @ConfigProperty(name = "quarkus.grpc.server.port", defaultValue = "9000")
    int grpcPort;

    private volatile State state = State.LOADING;
    private volatile Loaded loaded;
    private final LoadWindow window = new LoadWindow();

    /** Everything that exists once the experts are loaded. */
    record Loaded(ModelConfig config, Checkpoint checkpoint, ExpertSet hosts, CheckpointExpertStore store,
                  ExpertComputer computer, ExpertCallParser parser, String backend) {}

    void onStart(@Observes StartupEvent event) {
        Thread.ofPlatform().name("expert-loader").start(this::load);
    }

    private void load() {
        long t0 = System.nanoTime();
        try {
            if (settings.backend() == ExpertPodSettings.Backend.cuda) {
                throw new IllegalStateException("moe.expert.backend=cuda, but this build has no CUDA backend (it has not been verified on an"
                        + " NVIDIA GPU; see expert-service/README.md): use cpu or auto");
            }
            ModelConfig config = ConfigParser.load(model.path());
            ExpertSet hosts = ExpertSet.parse(settings.hosts()).validate(config);
            boolean int8 = ModelOptions.int8Activations("moe.expert.activations", settings.activations());
            if (int8 && settings.offloadBudgetBytes() >= 0) {
                throw new IllegalStateException("moe.expert.activations=int8 repacks every hosted expert into memory at start;"
                        + " it cannot be combined with moe.expert.offload-budget-bytes");
            }
            Checkpoint checkpoint = Checkpoint.open(model.path());
            checkpoint.useInt8Activations(int8);
            CheckpointExpertStore store = ExpertLoader.loadHosted(config, checkpoint, hosts);
            if (settings.quantize() != ExpertPodSettings.Quantize.none && !checkpoint.quantization().isQuantized()) {
                TargetFormat format = TargetFormat.parse(settings.quantize().name());
                // Lives as long as the pod: the quantized experts are its weights from now on.
                Arena arena = Arena.ofShared();
                store = store.map(w -> {
                    WeightMatrix q = WeightQuantizer.quantize(w, format, settings.quantizeGroupSize(), arena);
                    return int8 ? PanelKernel.repack(q) : q;
                });
            }
            boolean offload = settings.offloadBudgetBytes() >= 0;
            boolean prefault = settings.prefault() && !offload;
            long bytes = prefault ? store.prefault() : store.byteSize();
            CpuMatmulKernels kernels = new CpuMatmulKernels(Parallel.shared());
            int k = config.moe().topK();
            long warmup = settings.warmup().isZero() ? 0 : warmUp(config, store, kernels, settings.warmup().toNanos());
            // The computer records into the metrics, whose queue gauges then read the computer.
            ExpertMetrics metrics = new ExpertMetrics(registry, store, window);
            ExpertExecutor executor;
            if (offload) {
                // After the warm-up, which touched an expert: the set starts empty, as its accounting does.
                OffloadingExpertExecutor offloading = OffloadingExpertExecutor.local(store, kernels, settings.maxBatchTokens(), k,
                        settings.offloadBudgetBytes(), false, metrics);
                metrics.watchOffload(offloading.residency());
                executor = offloading;
            } else {
                executor = new LocalExpertExecutor(store, kernels, settings.maxBatchTokens(), k, metrics);
            }
            ExpertComputer computer = new ExpertComputer(executor, config.hiddenSize(), k, settings.maxBatchTokens(),
                    settings.inlineMaxTokens(), model.resolvedId(), settings.routingTableVersion());
            metrics.watchQueue(computer::queuedTokens, computer::inFlightCalls);
            computer.start(metrics);
            ExpertCallParser parser = new ExpertCallParser(model.resolvedId(), settings.routingTableVersion(), config, hosts, hosts.spec());
            loaded = new Loaded(config, checkpoint, hosts, store, computer, parser, kernels.name());
            state = State.SERVING;
            LOG.infof("serving %d experts (%s) of %s as '%s' in group '%s': %.1f MiB of weights %s, %d warm-up passes, ready in %.1f s, backend %s",
                    hosts.count(config), hosts.spec(), model.path(), model.resolvedId(), settings.group(), bytes / 1048576.0,
                    prefault ? "paged in" : offload ? "mapped, at most " + settings.offloadBudgetBytes() + " bytes resident" : "mapped",
                    warmup, (System.nanoTime() - t0) / 1e9, kernels.name());
        } catch (RuntimeException e) {
            LOG.errorf("cannot serve experts '%s' of %s: %s", settings.hosts(), model.path(), e.getMessage());
            Quarkus.asyncExit(1);
        }
    }

    /**
     * Runs the kernels until the JIT has compiled them (or the time is up), so that the first real calls are not
     * computed by the interpreter, which runs Vector API code hundreds of times slower: on a loaded machine those
     * calls miss their deadlines, are retried on other cold replicas, and the retries keep everybody cold. The
     * passes use thin row slices of a real hosted expert (the same mapped memory and dtype, so the compiled code is
     * the code real calls take) and then the expert itself, matrix-vector and matrix-matrix both.
     */
    /** A few rows of {@code m}: 4, or one block of rows of a quantized matrix, which cannot be cut inside one. */
    private static WeightMatrix thinSlice(WeightMatrix m) {
        int rows = m.isQuantized() ? Math.max(4, m.quantization().blockRows()) : 4;
        if (m.isQuantized() && m.quantization().zeroPoints() != null) rows = Math.max(rows, 32);
        return m.rowSlice("warm-up", 0, Math.min(rows, m.rows()));
    }

    private static long warmUp(ModelConfig config, CheckpointExpertStore store, CpuMatmulKernels kernels, long budgetNanos) {
        int layer = -1;
        int[] ids = new int[0];
        for (int l = 0; l < store.numLayers() && ids.length == 0; l++) {
            ids = store.hostedExperts(l);
            layer = l;
        }
        if (ids.length == 0) return 0;
        ExpertWeights w = store.expert(layer, ids[0]);
        WeightMatrix first = w.matrices().getFirst();
        WeightMatrix[] thin = {thinSlice(first), thinSlice(w.down())};
        int tokens = 8;
        float[] x = new float[tokens * Math.max(first.cols(), w.down().cols())];
        for (int i = 0; i < x.length; i++) x[i] = (float) Math.sin(i);
        float[] y = new float[tokens * 4];
        long deadline = System.nanoTime() + budgetNanos;
        long passes = 0;
        for (; passes < 20_000 && System.nanoTime() - deadline < 0; passes++) {
            kernels.matmul(thin[(int) (passes & 1)], x, 0, y, 0, (passes & 2) == 0 ? 1 : tokens);
        }
        int k = config.moe().topK();
        int h = config.hiddenSize();
        LocalExpertExecutor executor = new LocalExpertExecutor(store, kernels, tokens, k);
        int[] experts = new int[tokens * k];
        float[] weights = new float[tokens * k];
        float[] out = new float[tokens * h];
        java.util.Arrays.fill(experts, -1);
        for (int t = 0; t < tokens; t++) {
            experts[t * k] = ids[t % ids.length];
            weights[t * k] = 1f;
        }
        for (int i = 0; i < 20 && System.nanoTime() - deadline < 0; i++, passes++) {
            executor.computeExperts(0, layer, i % 2 == 0 ? 1 : tokens, k, x, experts, weights, out);
        }
        return passes;
    }

    void onShutdownDelay(@Observes ShutdownDelayInitiatedEvent event) {
        beginDrain();
    }

    void onShutdown(@Observes ShutdownEvent event) {
        beginDrain();
        Loaded l = loaded;
        if (l == null) return;
        try {
            long timeout = settings.drainTimeout().toNanos();
            if (!l.computer().awaitIdle(timeout)) {
                LOG.warnf("drain timed out after %s with %d calls in flight", settings.drainTimeout(), l.computer().inFlightCalls());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        l.computer().close();
        l.checkpoint().close();
    }

    private void beginDrain() {
        if (state == State.DRAINING) return;
        state = State.DRAINING;
        Loaded l = loaded;
        LOG.infof("draining: refusing new calls, %d in flight", l == null ? 0 : l.computer().inFlightCalls());
    }

    public State state() {
        return state;
    }

    /** Null until the experts are loaded. */
    Loaded loaded() {
        return loaded;
    }

    LoadWindow window() {
        return window;
    }

    ExpertPodSettings settings() {
        return settings;
    }

    ModelSettings model() {
        return model;
    }

    String podName() {
        return settings.podName().or(() -> java.util.Optional.ofNullable(System.getenv("HOSTNAME")))
                .orElseGet(() -> "localhost:" + grpcPort);
    }
}
