package io.moeserve.runtime.kernel;

import io.moeserve.runtime.tensor.WeightMatrix;
import java.util.Arrays;

/**
 * Independent one-token products (and SwiGLU pairs) to run as one call: {@link MatmulKernels#run} may split all of
 * their rows over its threads together, so that a layer's small products (q, k and v; the chosen experts) cost one
 * fork and join instead of one each. Results are those of the separate calls, bit for bit.
 *
 * <p>Filled and run by one thread; the arrays are preallocated for {@code capacity} products and reused, so the
 * per-token path allocates nothing.
 */
public final class MatvecBatch {
    final WeightMatrix[] weights;
    final WeightMatrix[] ups;
    final float[][] xs;
    final int[] xOffsets;
    final float[][] ys;
    final int[] yOffsets;
    final float[][] scratches;
    final int[] scratchOffsets;
    int size;

    public MatvecBatch(int capacity) {
        weights = new WeightMatrix[capacity];
        ups = new WeightMatrix[capacity];
        xs = new float[capacity][];
        xOffsets = new int[capacity];
        ys = new float[capacity][];
        yOffsets = new int[capacity];
        scratches = new float[capacity][];
        scratchOffsets = new int[capacity];
    }

    /** Empties the batch and drops its references to arrays and weights. */
    public void clear() {
        Arrays.fill(weights, 0, size, null);
        Arrays.fill(ups, 0, size, null);
        Arrays.fill(xs, 0, size, null);
        Arrays.fill(ys, 0, size, null);
        Arrays.fill(scratches, 0, size, null);
        size = 0;
    }

    /** {@code y[yOffset + r] = W[r] · x[xOffset ..]}, as {@code matmul(w, x, xOffset, y, yOffset, 1)}. */
    public void add(WeightMatrix w, float[] x, int xOffset, float[] y, int yOffset) {
        int i = next();
        weights[i] = w;
        xs[i] = x;
        xOffsets[i] = xOffset;
        ys[i] = y;
        yOffsets[i] = yOffset;
    }

    /** As {@code swiglu(gate, up, x, xOffset, h, hOffset, scratch, scratchOffset, 1)}. */
    public void addSwiglu(WeightMatrix gate, WeightMatrix up, float[] x, int xOffset, float[] h, int hOffset,
                          float[] scratch, int scratchOffset) {
        if (gate.dtype() != up.dtype() || gate.rows() != up.rows() || gate.cols() != up.cols()) {
            throw new IllegalArgumentException(gate.name() + " and " + up.name() + " differ in shape or dtype");
        }
        add(gate, x, xOffset, h, hOffset);
        ups[size - 1] = up;
        scratches[size - 1] = scratch;
        scratchOffsets[size - 1] = scratchOffset;
    }

    public int size() {
        return size;
    }

    /** Most products the batch holds. */
    public int capacity() {
        return weights.length;
    }

    private int next() {
        if (size == weights.length) throw new IllegalStateException("matvec batch is full (" + weights.length + " products)");
        return size++;
    }
}
