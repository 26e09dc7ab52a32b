package io.moeserve.runtime.model;

import io.moeserve.runtime.tensor.WeightMatrix;

/**
 * A Mixture-of-Experts FFN: router logits, expert choice, the routed experts through an {@link ExpertExecutor},
 * MoE++'s zero-computation experts computed here (they never leave the router), and the shared expert(s).
 */
final class MoeBlock implements FeedForward {
    private final MoeConfig m;
    private final int hidden;
    private final WeightMatrix gate;          // [E, H]; for MoE++ 2-layer gates the second matrix is gate2
    private final WeightMatrix gate2;         // MoE++ wg.2 [E, 8E] or null
    private final WeightMatrix gateMap;       // MoE++ gating residual [E, E] or null
    private final Router router;
    private final ExpertExecutor executor;
    private final DenseMlp shared;            // or null
    private final WeightMatrix sharedGate;    // Qwen2-MoE [1, H] or null
    private final float[][] constants;        // MoE++ constant vectors
    private final WeightMatrix[] constantGates; // MoE++ constant experts' wg [2, H]
    private final int[] executorExperts;
    private final float[] constantMix = new float[2];

    MoeBlock(MoeConfig m, int hidden, WeightMatrix gate, WeightMatrix gate2, WeightMatrix gateMap, float[] scoreBias,
             ExpertExecutor executor, DenseMlp shared, WeightMatrix sharedGate, float[][] constants,
             WeightMatrix[] constantGates, int maxTokens) {
        this.m = m;
        this.hidden = hidden;
        this.gate = gate;
        this.gate2 = gate2;
        this.gateMap = gateMap;
        this.router = new Router(m, scoreBias);
        this.executor = executor;
        this.shared = shared;
        this.sharedGate = sharedGate;
        this.constants = constants;
        this.constantGates = constantGates;
        this.executorExperts = new int[maxTokens * m.topK()];
    }

    /** MoE++ layers after the first add the previous layer's (cumulative) logits through gate_map. */
    private boolean hasResidualInput(int layer) {
        return gateMap != null && layer > 0;
    }

    @Override
    public void forward(int layer, StepBatch batch, ForwardBuffers b, Compute c, RouterObserver observer) {
        int n = batch.size;
        int e = m.numExperts();
        int k = m.topK();
        if (gate2 != null) {
            c.kernels().matmul(gate, b.normed, 0, b.routerHidden, 0, n);
            for (int i = 0; i < n * gate.rows(); i++) b.routerHidden[i] = (float) Math.tanh(b.routerHidden[i]);
            c.kernels().matmul(gate2, b.routerHidden, 0, b.routerLogits, 0, n);
        } else {
            c.kernels().matmul(gate, b.normed, 0, b.routerLogits, 0, n);
        }
        if (gateMap != null) {
            if (hasResidualInput(layer)) {
                // logits += gate_map(previous logits); the sum is what the next layer receives.
                c.kernels().matmul(gateMap, b.routerResidual, 0, b.routerHidden, 0, n);
                for (int i = 0; i < n * e; i++) b.routerLogits[i] += b.routerHidden[i];
            }
            System.arraycopy(b.routerLogits, 0, b.routerResidual, 0, n * e);
        }
        for (int t = 0; t < n; t++) router.route(b.routerLogits, t * e, b.routerScratch, b.experts, b.weights, t * k);
        observer.onRouting(layer, batch, k, b.experts, b.weights);

        float[] x = b.normed;
        float scale = m.moePlusPlus() != null ? m.moePlusPlus().inputScale() : 1f;
        if (scale != 1f) {
            for (int i = 0; i < n * hidden; i++) b.expertInput[i] = b.normed[i] * scale;
            x = b.expertInput;
        }
        int ffn = m.numFfnExperts();
        for (int i = 0; i < n * k; i++) executorExperts[i] = b.experts[i] < ffn ? b.experts[i] : -1;
        executor.computeExperts(layer, n, k, x, executorExperts, b.weights, b.projected);
        if (m.moePlusPlus() != null) addZeroComputationExperts(n, k, x, b);
        if (shared != null) addShared(n, b, c);
    }

    /** Copy and constant experts, in ascending id after the FFN experts (zero experts add nothing). */
    private void addZeroComputationExperts(int n, int k, float[] x, ForwardBuffers b) {
        int firstConstant = m.firstConstantExpertId();
        for (int t = 0; t < n; t++) {
            for (int id = firstConstant; id < m.zeroExpertId(); id++) {
                for (int j = 0; j < k; j++) {
                    if (b.experts[t * k + j] != id) continue;
                    float w = b.weights[t * k + j];
                    int off = t * hidden;
                    if (id == m.copyExpertId()) {
                        VectorOps.axpy(w, x, off, b.projected, off, hidden);
                    } else {
                        int ci = id - firstConstant;
                        WeightMatrix wg = constantGates[ci];
                        for (int r = 0; r < 2; r++) {
                            float s = 0f;
                            for (int col = 0; col < hidden; col++) s += x[off + col] * wg.get(r, col);
                            constantMix[r] = s;
                        }
                        VectorOps.softmax(constantMix, 0, 2);
                        float[] v = constants[ci];
                        for (int col = 0; col < hidden; col++) {
                            b.projected[off + col] += w * (constantMix[0] * x[off + col] + constantMix[1] * v[col]);
                        }
                    }
                }
            }
        }
    }

    private void addShared(int n, ForwardBuffers b, Compute c) {
        // The shared expert's output goes to expertInput (free by now), then is added to the routed sum.
        shared.compute(n, b.normed, b.expertInput, b, c);
        if (sharedGate != null) {
            c.kernels().matmul(sharedGate, b.normed, 0, b.sharedGate, 0, n);
            for (int t = 0; t < n; t++) {
                float g = VectorOps.sigmoid(b.sharedGate[t]);
                VectorOps.axpy(g, b.expertInput, t * hidden, b.projected, t * hidden, hidden);
            }
        } else {
            VectorOps.add(b.expertInput, 0, b.projected, 0, n * hidden);
        }
    }
}
