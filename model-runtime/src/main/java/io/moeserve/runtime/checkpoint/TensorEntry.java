package io.moeserve.runtime.checkpoint;

import io.moeserve.runtime.tensor.DType;

/**
 * One validated tensor entry of a safetensors header: where its bytes lie, relative to the data region.
 *
 * @param begin first byte, relative to the start of the data region
 * @param end   one past the last byte, relative to the start of the data region
 */
record TensorEntry(String name, DType dtype, long[] shape, long begin, long end) {

    long byteSize() {
        return end - begin;
    }
}
