package io.moeserve.runtime.tensor;

import java.lang.foreign.MemorySegment;

/**
 * A weight matrix as {@code nn.Linear} stores it: [rows = out_features, cols = in_features], row-major, in its
 * checkpoint dtype. The product is {@code y = x · Wᵀ}. The bytes stay where they are (usually mapped from disk).
 */
public record WeightMatrix(String name, MemorySegment data, DType dtype, int rows, int cols) {

    public WeightMatrix {
        if (rows <= 0 || cols <= 0) throw new IllegalArgumentException(name + ": empty matrix " + rows + "x" + cols);
        if (data.byteSize() != (long) rows * cols * dtype.byteSize()) {
            throw new IllegalArgumentException(name + ": " + data.byteSize() + " bytes for " + rows + "x" + cols
                    + " " + dtype);
        }
    }

    /** Rows [from, from + count) as a matrix of their own (a view, no copy). */
    public WeightMatrix rowSlice(String sliceName, int from, int count) {
        long rowBytes = (long) cols * dtype.byteSize();
        return new WeightMatrix(sliceName, data.asSlice(from * rowBytes, count * rowBytes), dtype, count, cols);
    }

    public long byteSize() {
        return data.byteSize();
    }

    public float get(int row, int col) {
        return TensorAccess.getFloat(data, dtype, (long) row * cols + col);
    }
}
