package io.moeserve.runtime.family;

import java.util.Arrays;

/** A tensor that a model of a given config must have: name, shape and role. */
public record ExpectedTensor(String name, long[] shape, TensorRole role) {
    @Override
    public String toString() {
        return name + Arrays.toString(shape);
    }

    public long numElements() {
        long n = 1;
        for (long d : shape) n *= d;
        return n;
    }

    /** Input width of a linear weight (its last dimension, or the middle one of gpt-oss's [E, in, out]). */
    public long fanIn() {
        return role == TensorRole.EXPERTS_IN_OUT ? shape[1] : shape[shape.length - 1];
    }
}
