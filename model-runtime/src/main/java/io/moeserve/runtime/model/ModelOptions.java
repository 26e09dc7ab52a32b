package io.moeserve.runtime.model;

import io.moeserve.runtime.expert.ExpertExecutor;
import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.expert.ExpertStore;
import io.moeserve.runtime.kernel.MatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import java.util.Locale;
import java.util.function.Function;

/**
 * How to run a loaded model.
 *
 * @param maxStepTokens  most tokens in one forward step (prefill chunk + decode tokens); sizes every buffer
 * @param maxContext     longest sequence (RoPE table, attention scratch); at most max_position_embeddings
 * @param kernels        matmul backend
 * @param parallel       thread pool for attention and kernels
 * @param hostedExperts  which routed experts to load into this process
 * @param executor       builds the expert executor from the loaded experts; null = compute them here
 * @param skipping       dynamic expert skipping for tokens whose request sets none ({@link ExpertSkipping#OFF})
 * @param prunedExperts  experts the gates never pick ({@link PrunedExperts#NONE})
 * @param microBatches   when the executor waits on other processes (expert pods): how many micro-batches a step
 *                       of several sequences is split into, so one's attention runs while another's experts are at
 *                       the pods (ping-pong); 1 for no split. At most the executor's lanes.
 * @param microBatchMinTokens steps of fewer tokens are not split
 * @param kvCacheDtype   how the KV caches made by {@link MoeModel#newKvCache} store keys and values (F32: exact)
 * @param int8Activations int8 and int4 matrices multiply with activations quantized to int8 per block of 32 columns
 *                       (llama.cpp's Q8_0 numerics, {@code PanelKernel}) instead of dequantizing every weight exactly;
 *                       off by default
 */
public record ModelOptions(int maxStepTokens, int maxContext, MatmulKernels kernels, Parallel parallel,
                           ExpertSelection hostedExperts, Function<ExpertStore, ExpertExecutor> executor,
                           ExpertSkipping skipping, PrunedExperts prunedExperts, int microBatches, int microBatchMinTokens,
                           KvCacheDtype kvCacheDtype, boolean int8Activations) {

    public ModelOptions {
        if (microBatches < 1) throw new IllegalArgumentException("micro-batches must be at least 1, not " + microBatches);
        if (kvCacheDtype == null) throw new IllegalArgumentException("a KV cache dtype is required");
    }

    /** Options without expert skipping, pruning or micro-batching, with an F32 KV cache. */
    public ModelOptions(int maxStepTokens, int maxContext, MatmulKernels kernels, Parallel parallel,
                        ExpertSelection hostedExperts, Function<ExpertStore, ExpertExecutor> executor) {
        this(maxStepTokens, maxContext, kernels, parallel, hostedExperts, executor, ExpertSkipping.OFF, PrunedExperts.NONE, 1, 0,
                KvCacheDtype.F32, false);
    }

    public ModelOptions withMaxStepTokens(int tokens) {
        return new ModelOptions(tokens, maxContext, kernels, parallel, hostedExperts, executor, skipping, prunedExperts,
                microBatches, microBatchMinTokens, kvCacheDtype, int8Activations);
    }

    public ModelOptions withMaxContext(int context) {
        return new ModelOptions(maxStepTokens, context, kernels, parallel, hostedExperts, executor, skipping, prunedExperts,
                microBatches, microBatchMinTokens, kvCacheDtype, int8Activations);
    }

    public ModelOptions withExecutor(ExpertSelection hosted, Function<ExpertStore, ExpertExecutor> factory) {
        return new ModelOptions(maxStepTokens, maxContext, kernels, parallel, hosted, factory, skipping, prunedExperts,
                microBatches, microBatchMinTokens, kvCacheDtype, int8Activations);
    }

    public ModelOptions withSkipping(ExpertSkipping setting) {
        return new ModelOptions(maxStepTokens, maxContext, kernels, parallel, hostedExperts, executor, setting, prunedExperts,
                microBatches, microBatchMinTokens, kvCacheDtype, int8Activations);
    }

    public ModelOptions withPrunedExperts(PrunedExperts pruned) {
        return new ModelOptions(maxStepTokens, maxContext, kernels, parallel, hostedExperts, executor, skipping, pruned,
                microBatches, microBatchMinTokens, kvCacheDtype, int8Activations);
    }

    /** Splits steps of at least {@code minTokens} tokens and two or more sequences into {@code count} micro-batches. */
    public ModelOptions withMicroBatches(int count, int minTokens) {
        return new ModelOptions(maxStepTokens, maxContext, kernels, parallel, hostedExperts, executor, skipping, prunedExperts,
                count, minTokens, kvCacheDtype, int8Activations);
    }

    public ModelOptions withKvCacheDtype(KvCacheDtype dtype) {
        return new ModelOptions(maxStepTokens, maxContext, kernels, parallel, hostedExperts, executor, skipping, prunedExperts,
                microBatches, microBatchMinTokens, dtype, int8Activations);
    }

    /**
     * Whether an activations setting says int8 (true) or float (false, the default: exact), as the CLI's
     * {@code --activations}, the router's {@code moe.router.activations} and expert pods' {@code moe.expert.activations}
     * spell it; anything else is an error naming {@code setting}.
     */
    public static boolean int8Activations(String setting, String value) {
        return switch (value.trim().toLowerCase(Locale.ROOT)) {
            case "float" -> false;
            case "int8" -> true;
            default -> throw new IllegalArgumentException(setting + " must be float or int8, not '" + value + "'");
        };
    }

    /** With int8 activations on or off (see the component). */
    public ModelOptions withInt8Activations(boolean on) {
        return new ModelOptions(maxStepTokens, maxContext, kernels, parallel, hostedExperts, executor, skipping, prunedExperts,
                microBatches, microBatchMinTokens, kvCacheDtype, on);
    }
}
