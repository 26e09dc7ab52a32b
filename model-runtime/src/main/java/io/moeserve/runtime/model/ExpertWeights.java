package io.moeserve.runtime.model;

import io.moeserve.runtime.tensor.WeightMatrix;

/** One routed expert's SwiGLU FFN: down(silu(gate·x) ⊙ up·x). Views into the checkpoint's mapped bytes. */
public record ExpertWeights(WeightMatrix gate, WeightMatrix up, WeightMatrix down) {
    public int intermediate() {
        return gate.rows();
    }

    public long byteSize() {
        return gate.byteSize() + up.byteSize() + down.byteSize();
    }
}
