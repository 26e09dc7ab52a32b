package io.moeserve.runtime.model;

import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.kernel.VectorOps;
import io.moeserve.runtime.tensor.WeightMatrix;

/**
 * DeepSeek's multi-head latent attention (MLA), computed as transformers does: queries through an optional
 * low-rank pair (q_a, RMSNorm, q_b); keys and values expanded per head from a normed 512-wide latent (kv_b), plus
 * one shared RoPE key slice; interleaved RoPE on the rope slices only; the expanded keys and values are cached.
 *
 * <p>Caching the latent and absorbing kv_b into the query would use ~7× less cache memory; it changes rounding,
 * so this first version keeps the reference form.
 */
final class LatentAttention implements Attention {
    private static final float LATENT_NORM_EPS = 1e-6f; // HF builds these RMSNorms with their default eps

    private final AttentionConfig a;
    private final AttentionConfig.MlaDims m;
    private final WeightMatrix wq, wqa, wqb, wkva, wkvb, wo;
    private final float[] bqa, bkva, bo;
    private final float[] qaNorm, kvaNorm;

    LatentAttention(AttentionConfig a, WeightMatrix wq, WeightMatrix wqa, float[] bqa, float[] qaNorm, WeightMatrix wqb,
                    WeightMatrix wkva, float[] bkva, float[] kvaNorm, WeightMatrix wkvb, WeightMatrix wo, float[] bo) {
        this.a = a;
        this.m = a.mla();
        this.wq = wq;
        this.wqa = wqa;
        this.bqa = bqa;
        this.qaNorm = qaNorm;
        this.wqb = wqb;
        this.wkva = wkva;
        this.bkva = bkva;
        this.kvaNorm = kvaNorm;
        this.wkvb = wkvb;
        this.wo = wo;
        this.bo = bo;
    }

    @Override
    public void forward(int layer, StepBatch batch, KvCache cache, ForwardBuffers b, Compute c) {
        int n = batch.size;
        int heads = a.numHeads();
        int qk = m.qkHeadDim();
        int nope = m.qkNopeHeadDim();
        int rope = m.qkRopeHeadDim();
        int vd = m.vHeadDim();
        int lora = m.kvLoraRank();
        if (wq != null) {
            c.kernels().matmul(wq, b.normed, 0, b.q, 0, n);
        } else {
            int ql = m.qLoraRank();
            c.kernels().matmul(wqa, b.normed, 0, b.latentQ, 0, n);
            if (bqa != null) VectorOps.addBias(b.latentQ, n, ql, bqa);
            for (int t = 0; t < n; t++) VectorOps.rmsNorm(b.latentQ, t * ql, qaNorm, LATENT_NORM_EPS, b.latentQ, t * ql, ql);
            c.kernels().matmul(wqb, b.latentQ, 0, b.q, 0, n);
        }
        int kvaW = lora + rope;
        c.kernels().matmul(wkva, b.normed, 0, b.latentKv, 0, n);
        if (bkva != null) VectorOps.addBias(b.latentKv, n, kvaW, bkva);
        for (int t = 0; t < n; t++) VectorOps.rmsNorm(b.latentKv, t * kvaW, kvaNorm, LATENT_NORM_EPS, b.latentKv, t * kvaW, lora);
        // kv_b reads the normed latent rows, which are strided by kvaW in latentKv: compact them first.
        for (int t = 0; t < n; t++) System.arraycopy(b.latentKv, t * kvaW, b.latentNormed, t * lora, lora);
        c.kernels().matmul(wkvb, b.latentNormed, 0, b.expandedKv, 0, n);
        int kvbW = heads * (nope + vd);
        for (int t = 0; t < n; t++) {
            int pos = batch.positions[t];
            int slot = batch.slots[t];
            int kRopeOff = t * kvaW + lora;
            c.rope().apply(b.latentKv, kRopeOff, pos);
            for (int h = 0; h < heads; h++) c.rope().apply(b.q, t * heads * qk + h * qk + nope, pos);
            int kBase = cache.keyOffset(slot, pos);
            int vBase = cache.valueOffset(slot, pos);
            for (int h = 0; h < heads; h++) {
                int src = t * kvbW + h * (nope + vd);
                cache.writeKeys(layer, b.expandedKv, src, kBase + h * qk, nope);
                cache.writeKeys(layer, b.latentKv, kRopeOff, kBase + h * qk + nope, rope);
                cache.writeValues(layer, b.expandedKv, src + nope, vBase + h * vd, vd);
            }
        }
        c.attention().run(batch, cache, layer, b.q, b.attnOut, a, 0, null);
        c.kernels().matmul(wo, b.attnOut, 0, b.projected, 0, n);
        if (bo != null) VectorOps.addBias(b.projected, n, wo.rows(), bo);
    }
}
