package io.moeserve.runtime.model;

import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.config.MoeConfig;

/**
 * Every activation buffer a forward step needs, allocated once for the largest step (maxTokens tokens), so that
 * the per-token path allocates nothing. Rows are token-major: row t of a buffer of width w is [t·w, (t+1)·w).
 * (The gates' own scratch is their family's, {@link GateScratch}.)
 */
final class ForwardBuffers {
    final int maxTokens;
    final float[] hidden;        // residual stream
    final float[] normed;        // RMSNorm output
    final float[] q;
    final float[] k;
    final float[] v;
    final float[] attnOut;
    final float[] projected;     // o_proj / FFN output before the residual add
    final float[] latentQ;       // MLA q_a output
    final float[] latentKv;      // MLA kv_a output
    final float[] expandedKv;    // MLA kv_b output
    final float[] latentNormed;  // MLA normed kv latent, compacted
    final float[] ffnGate;
    final float[] ffnUp;
    final int[] experts;         // the gate's choice: k expert ids per token
    final float[] weights;       // and their combine weights
    final float[] expertInput;
    final int[] predictedExperts;  // the next MoE layer's gate applied to this layer's hidden states (pre-gating)
    final float[] predictedWeights;
    final int[] routedExperts;   // the gate's choice as the expert executor sees it (router-side experts as -1)
    final float[] sharedOut;     // the shared expert's output, computed while the routed experts' answers travel
    final float[] sharedGate;
    ExpertSkipper skipper;       // the model's, set once after construction; its per-row thresholds are the step's

    ForwardBuffers(ModelConfig c, int maxTokens) {
        this.maxTokens = maxTokens;
        int h = c.hiddenSize();
        AttentionConfig a = c.attention();
        int qWidth = a.numHeads() * a.qkHeadDim();
        hidden = new float[maxTokens * h];
        normed = new float[maxTokens * h];
        q = new float[maxTokens * qWidth];
        k = new float[maxTokens * a.keyWidth()];
        v = new float[maxTokens * a.valueWidth()];
        attnOut = new float[maxTokens * a.outputWidth()];
        projected = new float[maxTokens * h];
        if (a.kind() == AttentionConfig.Kind.MULTI_HEAD_LATENT) {
            var m = a.mla();
            latentQ = new float[maxTokens * Math.max(1, m.qLoraRank())];
            latentKv = new float[maxTokens * (m.kvLoraRank() + m.qkRopeHeadDim())];
            expandedKv = new float[maxTokens * a.numHeads() * (m.qkNopeHeadDim() + m.vHeadDim())];
            latentNormed = new float[maxTokens * m.kvLoraRank()];
        } else {
            latentQ = latentKv = expandedKv = latentNormed = new float[0];
        }
        MoeConfig m = c.moe();
        int ffnWidth = Math.max(c.denseIntermediate(), m.sharedIntermediate());
        ffnGate = new float[maxTokens * Math.max(1, ffnWidth)];
        ffnUp = new float[maxTokens * Math.max(1, ffnWidth)];
        experts = new int[maxTokens * m.topK()];
        weights = new float[maxTokens * m.topK()];
        expertInput = new float[maxTokens * h];
        predictedExperts = new int[maxTokens * m.topK()];
        predictedWeights = new float[maxTokens * m.topK()];
        routedExperts = new int[maxTokens * m.topK()];
        sharedOut = new float[m.sharedIntermediate() > 0 ? maxTokens * h : 0];
        sharedGate = new float[maxTokens];
    }
}
