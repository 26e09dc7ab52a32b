package io.moeserve.runtime.checkpoint;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Tensor;
import io.moeserve.runtime.tensor.TensorAccess;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Objects;

/**
 * A tensor to be written: its name, dtype and shape, and a callback that produces its bytes in place.
 *
 * @param filler writes exactly {@link #byteSize()} little-endian bytes into the segment it is given (a slice of
 *               the output file's writable mapping, so a multi-GiB tensor never passes through the heap)
 */
public record TensorSpec(String name, DType dtype, long[] shape, Filler filler) {

    /** Produces a tensor's bytes directly into its place in the output file. */
    @FunctionalInterface
    public interface Filler {
        /** Fills all of {@code target}, which is exactly the tensor's size. */
        void fill(MemorySegment target);
    }

    public TensorSpec {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(filler, "filler");
        shape = shape.clone();
        long n = 1;
        for (long d : shape) {
            if (d < 0) throw new IllegalArgumentException("tensor " + name + " has negative dimension in "
                    + Arrays.toString(shape));
            n = Math.multiplyExact(n, d);
        }
        Math.multiplyExact(n, (long) dtype.byteSize());
    }

    /** A tensor whose values are given as floats and stored narrowed to {@code dtype} (tests, tiny models). */
    public static TensorSpec ofFloats(String name, DType dtype, long[] shape, float[] values) {
        TensorSpec spec = new TensorSpec(name, dtype, shape, target -> {
            for (int i = 0; i < values.length; i++) TensorAccess.setFloat(target, dtype, i, values[i]);
        });
        if (spec.numElements() != values.length) {
            throw new IllegalArgumentException("tensor " + name + " of shape " + Arrays.toString(shape) + " needs "
                    + spec.numElements() + " values, got " + values.length);
        }
        return spec;
    }

    /** A byte-exact copy of an existing tensor (re-sharding, renaming), under a possibly new name. */
    public static TensorSpec copyOf(String name, Tensor source) {
        return new TensorSpec(name, source.dtype(), source.shape(), target -> target.copyFrom(source.data()));
    }

    /** The shape (a copy: the spec is immutable). */
    @Override
    public long[] shape() {
        return shape.clone();
    }

    public long numElements() {
        long n = 1;
        for (long d : shape) n *= d;
        return n;
    }

    public long byteSize() {
        return numElements() * dtype.byteSize();
    }

    @Override
    public String toString() {
        return name + " " + dtype + Arrays.toString(shape);
    }
}
