package io.moeserve.runtime.model;

import io.moeserve.runtime.kernel.MatmulKernels;

/**
 * The gating function of one MoE layer: from each token's normed hidden state, the experts it goes to and the
 * weights their outputs are combined with. One implementation per rule: the rules several families share here
 * ({@link SoftmaxTopKGate}: Mixtral, Qwen, OLMoE, DeepSeek-V2 greedy; {@link GroupLimitedGate}: DeepSeek's groups,
 * GLM-4.5), the others in their family's package.
 *
 * <p>Internal to the model: built by model families, called by {@link MoeBlock} on the forward thread. Gates hold
 * per-model scratch ({@link GateScratch}) shared by every layer, so one model's gates must not run concurrently.
 */
public interface Gate {
    /**
     * Routes tokens t < n: reads their normed hidden states ({@code x}, n rows of hidden_size) and writes each
     * token's k experts, in descending order of selection score, and their combine weights to
     * {@code experts[t·k, t·k + k)} and {@code weights[t·k, t·k + k)}.
     */
    void route(int n, float[] x, int[] experts, float[] weights, MatmulKernels kernels);

    /**
     * Routes the tokens of the micro-batch on lane {@code lane} (the expert executor's lane its layer calls use).
     * A gate that carries per-token state from one layer to the next (MoE++'s gating residual) keeps it per lane,
     * since micro-batches take turns layer by layer; the others route as {@link #route(int, float[], int[], float[],
     * MatmulKernels)} does.
     */
    default void route(int n, float[] x, int[] experts, float[] weights, MatmulKernels kernels, int lane) {
        route(n, x, experts, weights, kernels);
    }
}
