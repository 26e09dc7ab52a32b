package io.moeserve.runtime.model;

import io.moeserve.runtime.expert.ExpertExecutor;
import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.expert.ExpertStore;
import io.moeserve.runtime.kernel.MatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
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
 */
public record ModelOptions(int maxStepTokens, int maxContext, MatmulKernels kernels, Parallel parallel,
                           ExpertSelection hostedExperts, Function<ExpertStore, ExpertExecutor> executor,
                           ExpertSkipping skipping, PrunedExperts prunedExperts) {

    /** Options without expert skipping. */
    public ModelOptions(int maxStepTokens, int maxContext, MatmulKernels kernels, Parallel parallel,
                        ExpertSelection hostedExperts, Function<ExpertStore, ExpertExecutor> executor) {
        this(maxStepTokens, maxContext, kernels, parallel, hostedExperts, executor, ExpertSkipping.OFF, PrunedExperts.NONE);
    }

    public ModelOptions withMaxStepTokens(int tokens) {
        return new ModelOptions(tokens, maxContext, kernels, parallel, hostedExperts, executor, skipping, prunedExperts);
    }

    public ModelOptions withMaxContext(int context) {
        return new ModelOptions(maxStepTokens, context, kernels, parallel, hostedExperts, executor, skipping, prunedExperts);
    }

    public ModelOptions withExecutor(ExpertSelection hosted, Function<ExpertStore, ExpertExecutor> factory) {
        return new ModelOptions(maxStepTokens, maxContext, kernels, parallel, hosted, factory, skipping, prunedExperts);
    }

    public ModelOptions withSkipping(ExpertSkipping setting) {
        return new ModelOptions(maxStepTokens, maxContext, kernels, parallel, hostedExperts, executor, setting, prunedExperts);
    }

    public ModelOptions withPrunedExperts(PrunedExperts pruned) {
        return new ModelOptions(maxStepTokens, maxContext, kernels, parallel, hostedExperts, executor, skipping, pruned);
    }
}
