package io.moeserve.runtime.kernel;

import io.moeserve.runtime.tensor.WeightMatrix;

/**
 * The matrix products the model math is built on; the seam where a faster backend plugs in.
 *
 * <p>All activations are float32 in row-major heap arrays; weights stay in their checkpoint dtype (F32, BF16,
 * F16) and are widened on the fly, with float32 accumulation. Implementations must be safe to call from one
 * thread at a time per instance (they may parallelise internally across all cores).
 */
public interface MatmulKernels {

    /**
     * {@code y[t][r] = Σ_c x[t][c] · W[r][c]} for {@code t < n}, {@code r < W.rows}: x holds n rows of W.cols
     * floats starting at {@code xOffset}; y receives n rows of W.rows floats starting at {@code yOffset}.
     * n = 1 is a matrix-vector product (decode); larger n is a matrix-matrix product (prefill, batched experts).
     */
    void matmul(WeightMatrix w, float[] x, int xOffset, float[] y, int yOffset, int n);

    /**
     * The first half of a SwiGLU FFN, {@code h[t][r] = silu(x[t] · G[r]) · (x[t] · U[r])} for gate and up
     * projections of the same shape: n rows of G.rows floats into {@code h} from {@code hOffset}; {@code scratch}
     * (as large) receives the up projection. By default the two products, then {@link VectorOps#swiglu}; a backend
     * may fuse them, with the same result.
     */
    default void swiglu(WeightMatrix gate, WeightMatrix up, float[] x, int xOffset, float[] h, int hOffset,
                        float[] scratch, int scratchOffset, int n) {
        matmul(gate, x, xOffset, h, hOffset, n);
        matmul(up, x, xOffset, scratch, scratchOffset, n);
        VectorOps.swiglu(h, hOffset, scratch, scratchOffset, n * gate.rows());
    }

    /**
     * Runs every product of the batch ({@link MatvecBatch}); by default one call after another, while a backend with
     * threads may run them as one parallel call, with the same results.
     */
    default void run(MatvecBatch batch) {
        for (int i = 0; i < batch.size; i++) {
            if (batch.ups[i] == null) {
                matmul(batch.weights[i], batch.xs[i], batch.xOffsets[i], batch.ys[i], batch.yOffsets[i], 1);
            } else {
                swiglu(batch.weights[i], batch.ups[i], batch.xs[i], batch.xOffsets[i], batch.ys[i], batch.yOffsets[i],
                        batch.scratches[i], batch.scratchOffsets[i], 1);
            }
        }
    }

    /** A short name for logs and benchmark tables. */
    String name();
}
