package io.moeserve.runtime.model;

import io.moeserve.runtime.kernel.VectorOps;
import io.moeserve.runtime.tensor.WeightMatrix;

/**
 * The expert every token goes through beside its routed ones (Qwen2-MoE's shared_expert, DeepSeek's
 * shared_experts, which several experts' widths fused into one MLP): a SwiGLU MLP whose output is added to the
 * routed sum, scaled per token by {@code sigmoid(shared_expert_gate · x)} where the family has that gate
 * (Qwen2-MoE).
 */
public final class SharedExpert {
    private final DenseMlp mlp;
    private final WeightMatrix gate; // [1, H] or null

    /** @param sigmoidGate Qwen2-MoE's shared_expert_gate [1, H], or null for an ungated shared expert */
    public SharedExpert(WeightMatrix gateProj, WeightMatrix upProj, WeightMatrix downProj, WeightMatrix sigmoidGate) {
        this.mlp = new DenseMlp(gateProj, upProj, downProj);
        this.gate = sigmoidGate;
    }

    /** out[t] += (gate(x[t]) ·) MLP(x[t]) for t < n: {@link #compute}, then {@link #addTo}. */
    void add(int n, int hidden, float[] x, float[] out, ForwardBuffers b, Compute c) {
        compute(n, x, b, c);
        addTo(n, hidden, out, b);
    }

    /**
     * The shared expert's MLP output into {@code b.sharedOut} and its gate's logits into {@code b.sharedGate}, for
     * t < n: the part the router computes while the routed experts' answers travel.
     */
    void compute(int n, float[] x, ForwardBuffers b, Compute c) {
        mlp.compute(n, x, b.sharedOut, b, c);
        if (gate != null) c.kernels().matmul(gate, x, 0, b.sharedGate, 0, n);
    }

    /** out[t] += (sigmoid(sharedGate[t]) ·) sharedOut[t] for t < n, after {@link #compute}. */
    void addTo(int n, int hidden, float[] out, ForwardBuffers b) {
        if (gate == null) {
            VectorOps.add(b.sharedOut, 0, out, 0, n * hidden);
            return;
        }
        for (int t = 0; t < n; t++) {
            VectorOps.axpy(VectorOps.sigmoid(b.sharedGate[t]), b.sharedOut, t * hidden, out, t * hidden, hidden);
        }
    }
}
