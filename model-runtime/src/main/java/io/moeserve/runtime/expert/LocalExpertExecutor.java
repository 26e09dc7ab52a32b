package io.moeserve.runtime.expert;

import io.moeserve.runtime.kernel.MatmulKernels;
import io.moeserve.runtime.kernel.MatvecBatch;
import io.moeserve.runtime.kernel.VectorOps;
import java.util.Arrays;

/**
 * Runs routed experts in this process with the CPU kernels: the batch's tokens are grouped by expert (a counting
 * sort, stable in token order), and each expert computes all of its tokens as one matrix-matrix product per
 * projection, so weights stream from memory once per step rather than once per token. Experts run in ascending
 * id and each token's terms are added in that order (the determinism contract of {@link ExpertExecutor}).
 */
public final class LocalExpertExecutor implements ExpertExecutor {
    private final ExpertStore store;
    private final MatmulKernels kernels;
    private final int hidden;
    private final int[] counts;
    private final int[] starts;
    private final int[] order;
    private final float[] gathered;
    private final float[] gate;
    private final float[] up;
    private final float[] down;
    private final ExpertComputeListener listener;
    private final MatvecBatch batch;

    /** @param maxTokens most tokens per call */
    public LocalExpertExecutor(ExpertStore store, MatmulKernels kernels, int maxTokens, int topK) {
        this(store, kernels, maxTokens, topK, ExpertComputeListener.NONE);
    }

    /** @param listener told each expert's token count and compute time after it ran */
    public LocalExpertExecutor(ExpertStore store, MatmulKernels kernels, int maxTokens, int topK,
                               ExpertComputeListener listener) {
        this.listener = listener;
        this.store = store;
        this.kernels = kernels;
        this.hidden = store.hiddenSize();
        this.counts = new int[store.numExperts()];
        this.starts = new int[store.numExperts() + 1];
        this.order = new int[maxTokens * topK];
        this.gathered = new float[maxTokens * hidden];
        // Twice the width: gpt-oss's experts write their interleaved gate_up outputs here.
        this.gate = new float[maxTokens * 2 * store.maxIntermediate()];
        this.up = new float[maxTokens * store.maxIntermediate()];
        this.down = new float[maxTokens * hidden];
        this.batch = new MatvecBatch(Math.max(1, Math.min(maxTokens, store.numExperts())));
    }

    /** Most tokens one call may carry. */
    public int maxTokens() {
        return gathered.length / hidden;
    }

    @Override
    public void computeExperts(long step, int layer, int n, int k, float[] x, int[] experts, float[] weights, float[] out) {
        Arrays.fill(out, 0, n * hidden, 0f);
        Arrays.fill(counts, 0);
        int total = n * k;
        for (int i = 0; i < total; i++) {
            int e = experts[i];
            if (e >= 0) counts[e]++;
        }
        starts[0] = 0;
        for (int e = 0; e < counts.length; e++) starts[e + 1] = starts[e] + counts[e];
        for (int e = 0; e < counts.length; e++) counts[e] = starts[e];
        for (int i = 0; i < total; i++) {
            int e = experts[i];
            if (e >= 0) order[counts[e]++] = i;
        }
        if (oneTokenPerExpert()) {
            computeOneTokenEach(layer, k, x, weights, out);
            return;
        }
        for (int e = 0; e < counts.length; e++) {
            int from = starts[e];
            int rows = starts[e + 1] - from;
            if (rows == 0) continue;
            long started = listener == ExpertComputeListener.NONE ? 0 : System.nanoTime();
            ExpertWeights w = store.expert(layer, e);
            if (w == null) throw new IllegalStateException("expert " + e + " of layer " + layer + " is not hosted here");
            for (int r = 0; r < rows; r++) {
                int t = order[from + r] / k;
                System.arraycopy(x, t * hidden, gathered, r * hidden, hidden);
            }
            ClampedGlu glu = w.clamped();
            if (glu == null) {
                kernels.swiglu(w.gate(), w.up(), gathered, 0, gate, 0, up, 0, rows);
                kernels.matmul(w.down(), gate, 0, down, 0, rows);
            } else {
                kernels.matmul(w.gateUp(), gathered, 0, gate, 0, rows);
                glu.activate(gate, 0, up, 0, rows, w.intermediate());
                kernels.matmul(w.down(), up, 0, down, 0, rows);
                VectorOps.addBias(down, rows, hidden, glu.downBias());
            }
            for (int r = 0; r < rows; r++) {
                int i = order[from + r];
                VectorOps.axpy(weights[i], down, r * hidden, out, (i / k) * hidden, hidden);
            }
            if (listener != ExpertComputeListener.NONE) listener.onExpertComputed(layer, e, rows, System.nanoTime() - started);
        }
    }

    /** Whether every expert of the call has one token, and the scratch has a row for each (decode's usual case). */
    private boolean oneTokenPerExpert() {
        int active = 0;
        for (int e = 0; e < counts.length; e++) {
            int rows = starts[e + 1] - starts[e];
            if (rows > 1) return false;
            active += rows;
        }
        // A call with no pairs (a pod asked for nothing: tests, benchmarks) has nothing to batch and no time to share.
        return active > 0 && active <= maxTokens() && active <= batch.capacity();
    }

    /**
     * Every expert's gate, up and SwiGLU as one call of the kernels, then every down projection as another, instead of
     * two calls per expert: the same products on the same inputs (a token's own row of x), and its terms added in
     * ascending expert id as the general path adds them, so the same bits. The per-expert time reported is the
     * call's divided evenly, the experts having the same shape.
     */
    private void computeOneTokenEach(int layer, int k, float[] x, float[] weights, float[] out) {
        long started = listener == ExpertComputeListener.NONE ? 0 : System.nanoTime();
        int width = store.maxIntermediate();
        batch.clear();
        for (int e = 0, a = 0; e < counts.length; e++) {
            if (starts[e + 1] == starts[e]) continue;
            ExpertWeights w = store.expert(layer, e);
            if (w == null) throw new IllegalStateException("expert " + e + " of layer " + layer + " is not hosted here");
            int t = order[starts[e]] / k;
            if (w.clamped() == null) batch.addSwiglu(w.gate(), w.up(), x, t * hidden, gate, a * width, up, a * width);
            else batch.add(w.gateUp(), x, t * hidden, gate, a * 2 * width);
            a++;
        }
        int active = batch.size();
        kernels.run(batch);
        batch.clear();
        for (int e = 0, a = 0; e < counts.length; e++) {
            if (starts[e + 1] == starts[e]) continue;
            ExpertWeights w = store.expert(layer, e);
            if (w.clamped() == null) {
                batch.add(w.down(), gate, a * width, down, a * hidden);
            } else {
                w.clamped().activate(gate, a * 2 * width, up, a * width, 1, w.intermediate());
                batch.add(w.down(), up, a * width, down, a * hidden);
            }
            a++;
        }
        kernels.run(batch);
        batch.clear();
        long share = listener == ExpertComputeListener.NONE ? 0 : (System.nanoTime() - started) / active;
        for (int e = 0, a = 0; e < counts.length; e++) {
            if (starts[e + 1] == starts[e]) continue;
            int i = order[starts[e]];
            ClampedGlu glu = store.expert(layer, e).clamped();
            if (glu != null) VectorOps.add(glu.downBias(), 0, down, a * hidden, hidden);
            VectorOps.axpy(weights[i], down, a * hidden, out, (i / k) * hidden, hidden);
            if (listener != ExpertComputeListener.NONE) listener.onExpertComputed(layer, e, 1, share);
            a++;
        }
    }
}
