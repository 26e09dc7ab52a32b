package io.moeserve.runtime.tensor;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * A named, typed, shaped view of checkpoint bytes (usually a slice of a memory-mapped file; never copied).
 *
 * @param name  the tensor's name in the checkpoint, e.g. {@code model.layers.0.self_attn.q_proj.weight}
 * @param dtype element type
 * @param shape dimensions, outermost first (row-major, as safetensors stores them)
 * @param data  exactly {@code numElements * dtype.byteSize()} bytes, little-endian
 * @param file  the file the bytes come from (for error messages); may be null for in-memory tensors
 */
public record Tensor(String name, DType dtype, long[] shape, MemorySegment data, Path file) {

    public Tensor {
        long n = 1;
        for (long d : shape) {
            if (d < 0) throw new IllegalArgumentException("negative dimension in " + name);
            n = Math.multiplyExact(n, d);
        }
        if (data.byteSize() != n * dtype.byteSize()) {
            throw new IllegalArgumentException("tensor " + name + " has " + data.byteSize() + " bytes, shape "
                    + Arrays.toString(shape) + " of " + dtype + " needs " + n * dtype.byteSize());
        }
    }

    public long numElements() {
        return data.byteSize() / dtype.byteSize();
    }

    public int rank() {
        return shape.length;
    }

    /** Reads element {@code i} (flat index) widened to float. Slow path: tests, small tensors, loading. */
    public float getFloat(long i) {
        return TensorAccess.getFloat(data, dtype, i);
    }

    /** Copies this tensor (any dtype) widened to a new float array; for small tensors only (norms, biases). */
    public float[] toFloatArray() {
        requireFloat();
        long n = numElements();
        if (n > Integer.MAX_VALUE) throw new IllegalStateException(name + " is too large to widen onto the heap");
        float[] out = new float[(int) n];
        for (int i = 0; i < out.length; i++) out[i] = getFloat(i);
        return out;
    }

    /** Views this tensor as a weight matrix [rows = shape[0], cols = product of the rest]. */
    public WeightMatrix asMatrix() {
        requireFloat();
        if (shape.length < 1) throw new IllegalStateException(name + " is a scalar, not a matrix");
        long rows = shape[0];
        long cols = shape.length == 1 ? 1 : numElements() / Math.max(1, rows);
        return new WeightMatrix(name, data, dtype, Math.toIntExact(rows), Math.toIntExact(cols));
    }

    /**
     * Refuses a tensor whose elements are not float values (FP8 codes, integers), where the caller reads weights as
     * floats: such a tensor is quantized, or belongs to a format this runtime does not read, and reading it as
     * floats would compute garbage.
     */
    public void requireFloat() {
        if (!dtype.isFloat()) {
            throw new IllegalArgumentException("tensor " + name + (file == null ? "" : " in " + file) + " has dtype "
                    + dtype + " where float weights (F32, BF16 or F16) are expected; a quantized weight needs its"
                    + " checkpoint's quantization_config and scales");
        }
    }

    @Override
    public String toString() {
        return name + " " + dtype + Arrays.toString(shape);
    }
}
