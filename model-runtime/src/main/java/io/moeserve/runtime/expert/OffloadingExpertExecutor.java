package io.moeserve.runtime.expert;

import io.moeserve.runtime.kernel.MatmulKernels;

/**
 * Computes routed experts as its delegate does (this process's CPU kernels), keeping only an {@link ExpertResidency}'s
 * budget of expert weights in memory: each call's experts are looked up (hits, misses, admissions) before the
 * delegate reads them, and the experts the caller predicted for the next layer ({@link #prefetch}) are admitted and
 * paged in by the residency's worker while this call computes. The delegate reads the same mapped bytes either way,
 * so the output is bit for bit the delegate's.
 */
public final class OffloadingExpertExecutor implements ExpertExecutor, AutoCloseable {
    private final ExpertExecutor delegate;
    private final ExpertResidency residency;
    private final int[] predicted;
    private final boolean prefetch;
    private int predictedCount;
    private int predictedLayer = -1;

    /**
     * @param maxPairs most (token, expert) pairs of one prediction: the step's tokens times top-k
     * @param prefetch whether to take predictions ({@link #prefetches()}); without, the set is plain LRU on demand
     */
    public OffloadingExpertExecutor(ExpertExecutor delegate, ExpertResidency residency, int maxPairs, boolean prefetch) {
        this.delegate = delegate;
        this.residency = residency;
        this.predicted = new int[maxPairs];
        this.prefetch = prefetch;
    }

    /**
     * This process's CPU kernels over {@code store}'s experts, with at most {@code budgetBytes} of them resident;
     * the set starts empty (every hosted expert's pages dropped).
     */
    public static OffloadingExpertExecutor local(ExpertStore store, MatmulKernels kernels, int maxTokens, int topK, long budgetBytes,
                                                 boolean prefetch, ExpertComputeListener listener) {
        if (!(store instanceof CheckpointExpertStore checkpoint)) {
            throw new IllegalArgumentException("expert offloading needs a checkpoint's experts, not " + store.getClass().getSimpleName());
        }
        ExpertResidency residency = new ExpertResidency(checkpoint, budgetBytes);
        residency.unloadAll();
        return new OffloadingExpertExecutor(new LocalExpertExecutor(store, kernels, maxTokens, topK, listener), residency, maxTokens * topK,
                prefetch);
    }

    public ExpertResidency residency() {
        return residency;
    }

    @Override
    public void computeExperts(long step, int layer, int n, int k, float[] x, int[] experts, float[] weights, float[] out) {
        residency.beforeCall(layer, experts, n * k);
        if (predictedLayer >= 0) {
            residency.prefetch(predictedLayer, predicted, predictedCount);
            predictedLayer = -1;
        }
        try {
            delegate.computeExperts(step, layer, n, k, x, experts, weights, out);
        } finally {
            residency.afterCall();
        }
    }

    /** Remembers the prediction; the next call prefetches it once its own experts are admitted. */
    @Override
    public void prefetch(int layer, int n, int k, int[] experts) {
        int pairs = Math.min(n * k, predicted.length);
        System.arraycopy(experts, 0, predicted, 0, pairs);
        predictedCount = pairs;
        predictedLayer = layer;
    }

    @Override
    public boolean prefetches() {
        return prefetch;
    }

    @Override
    public void close() {
        residency.close();
    }
}
