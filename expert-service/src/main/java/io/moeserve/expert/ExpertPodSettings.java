package io.moeserve.expert;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.time.Duration;
import java.util.Optional;

/** What this expert pod hosts and how it computes and drains. */
@ConfigMapping(prefix = "moe.expert")
public interface ExpertPodSettings {
    /** Placement spec of the hosted (layer, expert) pairs, e.g. {@code *:0-3} (docs/architecture.md). */
    @WithDefault("*")
    String hosts();

    /** The expert group this pod belongs to; a label on all its metrics, for per-group autoscaling. */
    @WithDefault("default")
    String group();

    /** Routing-table version calls must carry; 0 accepts any. */
    @WithDefault("0")
    long routingTableVersion();

    /** Most tokens computed in one batched pass (larger calls are computed in chunks); sizes the scratch. */
    @WithDefault("1024")
    int maxBatchTokens();

    /**
     * Calls of at most this many tokens (decode steps) are computed on the gRPC thread that received them when the
     * pod is idle, saving two thread hand-offs; larger ones, and calls that arrive while a batch is computing, go to
     * the compute thread. 0 sends every call to the compute thread.
     */
    @WithDefault("128")
    int inlineMaxTokens();

    /** Page every hosted weight into memory before reporting ready. */
    @WithDefault("true")
    boolean prefault();

    /**
     * Expert offloading: at most this many bytes of the hosted experts' weights stay resident (least recently used
     * out first, {@code madvise(MADV_DONTNEED)} on the mapped checkpoint), the others are read from the mapping when
     * a call needs them; -1 (the default) keeps every hosted expert resident, as before. With offloading on the pod
     * does not page its experts in at start ({@link #prefault()} is ignored) and needs them mapped from the checkpoint
     * (so not with {@link #quantize()}, nor gpt-oss's float experts, which are transposed into memory of their own).
     * The answers are bit for bit the same; only memory and time change.
     */
    @WithDefault("-1")
    long offloadBudgetBytes();

    /**
     * {@code float} (the default): quantized experts are dequantized exactly, the dequantized model's bits; {@code int8}:
     * int8 and int4 experts are repacked into row panels at start and multiply with activations quantized to int8 per
     * block of 32 columns (llama.cpp's numerics, {@code PanelKernel}), faster but not the same bits. The router must
     * say the same ({@code moe.router.activations}) for the model to compute what one process computes. Not with
     * {@link #offloadBudgetBytes()}: the panels put every hosted expert in memory.
     */
    @WithDefault("float")
    String activations();

    /** At most this long is spent running the kernels on dummy tokens before readiness, so the JIT has compiled them. */
    @WithDefault("3s")
    Duration warmup();

    /** How long a shutdown waits for calls in flight to finish. */
    @WithDefault("30s")
    Duration drainTimeout();

    /**
     * Where experts are computed: {@code cpu} (the runtime's Vector API kernels), {@code auto} (the best backend
     * this build has: today the CPU) or {@code cuda}, which this build refuses at start because it has no CUDA
     * backend yet (expert-service/README.md).
     */
    @WithDefault("auto")
    Backend backend();

    enum Backend { auto, cpu, cuda }

    /**
     * Quantize the hosted experts at start, for a checkpoint that ships them in a float dtype: {@code none}, or
     * {@code int4}/{@code int8} (groups of {@link #quantizeGroupSize()} columns) or {@code fp8} (128×128 blocks),
     * the same weights {@code moe quantize} would write, or {@code mxfp4} (gpt-oss's format: E2M1 with an E8M0 scale
     * per 32 columns, transformers' rounding; any family whose expert widths are multiples of 32). A checkpoint that
     * is already quantized is served as it is.
     */
    @WithDefault("none")
    Quantize quantize();

    enum Quantize { none, int4, int8, fp8, mxfp4 }

    /** Columns per scale for {@code quantize=int4|int8}. */
    @WithDefault("128")
    int quantizeGroupSize();

    /** Name reported to routers; defaults to $HOSTNAME (the Kubernetes pod name), else host:port. */
    Optional<String> podName();
}
