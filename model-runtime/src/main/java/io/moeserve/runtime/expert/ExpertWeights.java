package io.moeserve.runtime.expert;

import io.moeserve.runtime.tensor.WeightMatrix;

/** One routed expert's SwiGLU FFN: down(silu(gate·x) ⊙ up·x). Views into the checkpoint's mapped bytes. */
public record ExpertWeights(WeightMatrix gate, WeightMatrix up, WeightMatrix down) {
    public int intermediate() {
        return gate.rows();
    }

    /** Pages the three matrices (codes, scales, zero points) into memory when they are mapped from a file (a no-op for heap or native memory). */
    public void prefault() {
        for (WeightMatrix m : new WeightMatrix[] {gate, up, down}) {
            if (m.data().isMapped()) m.data().load();
            if (m.isQuantized()) {
                if (m.quantization().scales().isMapped()) m.quantization().scales().load();
                var zp = m.quantization().zeroPoints();
                if (zp != null && zp.isMapped()) zp.load();
            }
        }
    }

    public long byteSize() {
        return gate.byteSize() + up.byteSize() + down.byteSize();
    }
}
