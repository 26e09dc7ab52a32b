package io.moeserve.runtime.expert;

import io.moeserve.runtime.tensor.WeightMatrix;
import java.util.List;

/**
 * One routed expert's FFN, as views into the checkpoint's mapped bytes. Two shapes:
 * <ul>
 *   <li>SwiGLU (every family but gpt-oss): {@code down(silu(gate·x) ⊙ up·x)}, with {@code gate} and {@code up}
 *       [I, H] and {@code gateUp} null;
 *   <li>gpt-oss's clamped SwiGLU ({@link ClampedGlu}): one {@code gateUp} [2I, H] whose even rows are the gate and
 *       odd rows the up projection, as the checkpoint interleaves them, with biases; {@code gate} and {@code up}
 *       null.
 * </ul>
 *
 * @param clamped gpt-oss's biases and clamp, or null for SwiGLU
 */
public record ExpertWeights(WeightMatrix gate, WeightMatrix up, WeightMatrix gateUp, WeightMatrix down,
                            ClampedGlu clamped) {

    /** A SwiGLU expert. */
    public ExpertWeights(WeightMatrix gate, WeightMatrix up, WeightMatrix down) {
        this(gate, up, null, down, null);
    }

    /** A gpt-oss expert: the interleaved gate_up [2I, H], down [H, I], their biases and clamp. */
    public static ExpertWeights clamped(WeightMatrix gateUp, WeightMatrix down, ClampedGlu glu) {
        return new ExpertWeights(null, null, gateUp, down, glu);
    }

    public int intermediate() {
        return down.cols();
    }

    /** The expert's weight matrices, input side first. */
    public List<WeightMatrix> matrices() {
        return clamped == null ? List.of(gate, up, down) : List.of(gateUp, down);
    }

    /** The same expert with each matrix replaced by {@code f}'s result (quantized copies, say). */
    public ExpertWeights map(java.util.function.UnaryOperator<WeightMatrix> f) {
        return clamped == null ? new ExpertWeights(f.apply(gate), f.apply(up), f.apply(down))
                : clamped(f.apply(gateUp), f.apply(down), clamped);
    }

    /**
     * Pages the matrices (codes, scales, zero points) into memory when they are mapped from a file (a no-op for heap or
     * native memory, and for matrices with panels, whose products never read the mapped codes).
     */
    public void prefault() {
        for (WeightMatrix m : matrices()) {
            if (m.panels() != null) continue;
            if (m.data().isMapped()) m.data().load();
            if (m.isQuantized()) {
                if (m.quantization().scales().isMapped()) m.quantization().scales().load();
                var zp = m.quantization().zeroPoints();
                if (zp != null && zp.isMapped()) zp.load();
            }
        }
    }

    public long byteSize() {
        long n = 0;
        for (WeightMatrix m : matrices()) n += m.byteSize();
        return n;
    }
}
