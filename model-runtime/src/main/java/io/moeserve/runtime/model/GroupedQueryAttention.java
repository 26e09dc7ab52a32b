package io.moeserve.runtime.model;

import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.kernel.MatvecBatch;
import io.moeserve.runtime.kernel.VectorOps;
import io.moeserve.runtime.tensor.WeightMatrix;

/**
 * Llama-style grouped-query attention with the family variants: q/k/v biases (Qwen2-MoE), an o bias, per-head
 * q/k RMSNorm (Qwen3-MoE, GLM-4.5), RMSNorm over the whole q and k projections then clamping (OLMoE), half-split
 * RoPE over the whole head or over its first rotaryDim elements only (GLM-4.5's partial rotary), a sliding
 * window, and attention sinks (gpt-oss).
 */
final class GroupedQueryAttention implements Attention {
    private final AttentionConfig a;
    private final WeightMatrix wq, wk, wv, wo;
    private final float[] bq, bk, bv, bo;
    private final float[] qNorm, kNorm;
    private final float eps;
    private final int window;
    private final float[] sinks;
    private final MatvecBatch qkv = new MatvecBatch(3);

    GroupedQueryAttention(AttentionConfig a, WeightMatrix wq, WeightMatrix wk, WeightMatrix wv, WeightMatrix wo,
                          float[] bq, float[] bk, float[] bv, float[] bo, float[] qNorm, float[] kNorm, float eps,
                          int window, float[] sinks) {
        this.a = a;
        this.wq = wq;
        this.wk = wk;
        this.wv = wv;
        this.wo = wo;
        this.bq = bq;
        this.bk = bk;
        this.bv = bv;
        this.bo = bo;
        this.qNorm = qNorm;
        this.kNorm = kNorm;
        this.eps = eps;
        this.window = window;
        this.sinks = sinks;
    }

    @Override
    public void forward(int layer, StepBatch batch, KvCache cache, ForwardBuffers b, Compute c) {
        int n = batch.size;
        int hd = a.headDim();
        int qW = a.numHeads() * hd;
        int kvW = a.numKvHeads() * hd;
        if (n == 1) {
            // Decode: the three products of the one token in one call of the kernels.
            qkv.clear();
            qkv.add(wq, b.normed, 0, b.q, 0);
            qkv.add(wk, b.normed, 0, b.k, 0);
            qkv.add(wv, b.normed, 0, b.v, 0);
            c.kernels().run(qkv);
        } else {
            c.kernels().matmul(wq, b.normed, 0, b.q, 0, n);
            c.kernels().matmul(wk, b.normed, 0, b.k, 0, n);
            c.kernels().matmul(wv, b.normed, 0, b.v, 0, n);
        }
        if (bq != null) {
            VectorOps.addBias(b.q, n, qW, bq);
            VectorOps.addBias(b.k, n, kvW, bk);
            VectorOps.addBias(b.v, n, kvW, bv);
        }
        for (int t = 0; t < n; t++) {
            switch (a.qkNorm()) {
                case PER_HEAD -> {
                    for (int h = 0; h < a.numHeads(); h++) VectorOps.rmsNorm(b.q, t * qW + h * hd, qNorm, eps, b.q, t * qW + h * hd, hd);
                    for (int h = 0; h < a.numKvHeads(); h++) VectorOps.rmsNorm(b.k, t * kvW + h * hd, kNorm, eps, b.k, t * kvW + h * hd, hd);
                }
                case WHOLE_PROJECTION -> {
                    VectorOps.rmsNorm(b.q, t * qW, qNorm, eps, b.q, t * qW, qW);
                    VectorOps.rmsNorm(b.k, t * kvW, kNorm, eps, b.k, t * kvW, kvW);
                }
                case NONE -> { }
            }
            if (!Float.isNaN(a.clipQkv())) {
                clamp(b.q, t * qW, qW, a.clipQkv());
                clamp(b.k, t * kvW, kvW, a.clipQkv());
                clamp(b.v, t * kvW, kvW, a.clipQkv());
            }
            int pos = batch.positions[t];
            for (int h = 0; h < a.numHeads(); h++) c.rope().apply(b.q, t * qW + h * hd, pos);
            for (int h = 0; h < a.numKvHeads(); h++) c.rope().apply(b.k, t * kvW + h * hd, pos);
            int slot = batch.slots[t];
            cache.writeKeys(layer, b.k, t * kvW, cache.keyOffset(slot, pos), kvW);
            cache.writeValues(layer, b.v, t * kvW, cache.valueOffset(slot, pos), kvW);
        }
        c.attention().run(batch, cache, layer, b.q, b.attnOut, a, window, sinks);
        c.kernels().matmul(wo, b.attnOut, 0, b.projected, 0, n);
        if (bo != null) VectorOps.addBias(b.projected, n, wo.rows(), bo);
    }

    private static void clamp(float[] x, int off, int n, float limit) {
        for (int i = off; i < off + n; i++) x[i] = Math.max(-limit, Math.min(limit, x[i]));
    }
}
