package io.moeserve.runtime.model;

import io.moeserve.runtime.tensor.WeightMatrix;

/** SwiGLU MLP, down(silu(gate·x) ⊙ up·x): dense layers, and the shared experts of Qwen2-MoE and DeepSeek. */
final class DenseMlp implements FeedForward {
    private final WeightMatrix gate, up, down;

    DenseMlp(WeightMatrix gate, WeightMatrix up, WeightMatrix down) {
        this.gate = gate;
        this.up = up;
        this.down = down;
    }

    @Override
    public void forward(int layer, StepBatch batch, ForwardBuffers b, Compute c, RoutingObserver observer) {
        compute(batch.size, b.normed, b.projected, b, c);
    }

    /** out = MLP(x) for n rows. */
    void compute(int n, float[] x, float[] out, ForwardBuffers b, Compute c) {
        c.kernels().swiglu(gate, up, x, 0, b.ffnGate, 0, b.ffnUp, 0, n);
        c.kernels().matmul(down, b.ffnGate, 0, out, 0, n);
    }
}
