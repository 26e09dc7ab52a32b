package io.moeserve.runtime.kernel;

import io.moeserve.runtime.tensor.WeightMatrix;
import java.util.Objects;

/**
 * The obviously-correct reference product: plain loops, scalar conversions (a quantized weight by its format's
 * formula, {@link WeightMatrix#get}), float32 accumulation (for tests).
 */
public final class NaiveMatmulKernels implements MatmulKernels {

    @Override
    public void matmul(WeightMatrix w, float[] x, int xOffset, float[] y, int yOffset, int n) {
        int rows = w.rows();
        int cols = w.cols();
        Objects.checkFromIndexSize(xOffset, Math.multiplyExact(n, cols), x.length);
        Objects.checkFromIndexSize(yOffset, Math.multiplyExact(n, rows), y.length);
        for (int t = 0; t < n; t++) {
            for (int r = 0; r < rows; r++) {
                float acc = 0f;
                for (int c = 0; c < cols; c++) {
                    acc += x[xOffset + t * cols + c] * w.get(r, c);
                }
                y[yOffset + t * rows + r] = acc;
            }
        }
    }

    @Override
    public String name() {
        return "naive";
    }
}
