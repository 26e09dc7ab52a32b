package io.moeserve.runtime.model;

/**
 * Turns one token's router logits into its top-k experts and combine weights, per family (see
 * moe-architectures-and-techniques.md §1.8): softmax top-k with optional renormalisation (Mixtral, Qwen, OLMoE,
 * DeepSeek-V2 greedy), DeepSeek-V2's group-limited softmax, DeepSeek-V3's sigmoid scores with a selection-only
 * bias and group-limited top-k, and MoE++'s gate with a zero expert.
 *
 * <p>Selection is a k-pass argmax over at most a few hundred experts (k ≤ 8), ties to the lower id, results in
 * descending selection score. All scratch is passed in; nothing is allocated.
 */
final class Router {
    private final MoeConfig m;
    private final float[] scoreBias; // DeepSeek-V3 e_score_correction_bias, else null

    Router(MoeConfig m, float[] scoreBias) {
        this.m = m;
        this.scoreBias = scoreBias;
    }

    /**
     * Routes one token. {@code logits[lOff, lOff + E)} are its router logits (left unchanged);
     * {@code scratch} holds at least 2E floats.
     */
    void route(float[] logits, int lOff, float[] scratch, int[] experts, float[] weights, int outOff) {
        int e = m.numExperts();
        int k = m.topK();
        switch (m.router()) {
            case SOFTMAX_TOPK -> {
                System.arraycopy(logits, lOff, scratch, 0, e);
                VectorOps.softmax(scratch, 0, e);
                selectTopK(scratch, 0, e, k, experts, outOff, null);
                for (int j = 0; j < k; j++) weights[outOff + j] = scratch[experts[outOff + j]];
                if (m.normTopkProb()) normalise(weights, outOff, k, 0f);
                scale(weights, outOff, k, m.routedScalingFactor());
            }
            case SOFTMAX_GROUP_LIMITED -> {
                System.arraycopy(logits, lOff, scratch, 0, e);
                VectorOps.softmax(scratch, 0, e);
                maskGroups(scratch, 0, scratch, e, false);
                selectTopK(scratch, e, e, k, experts, outOff, null);
                for (int j = 0; j < k; j++) weights[outOff + j] = scratch[experts[outOff + j]];
                scale(weights, outOff, k, m.routedScalingFactor());
            }
            case SIGMOID_GROUP_LIMITED -> {
                for (int i = 0; i < e; i++) {
                    float s = VectorOps.sigmoid(logits[lOff + i]);
                    scratch[i] = s;
                    scratch[e + i] = s + scoreBias[i];
                }
                maskGroups(scratch, e, scratch, e, true);
                selectTopK(scratch, e, e, k, experts, outOff, null);
                for (int j = 0; j < k; j++) weights[outOff + j] = scratch[experts[outOff + j]];
                if (m.normTopkProb()) normalise(weights, outOff, k, 1e-20f);
                scale(weights, outOff, k, m.routedScalingFactor());
            }
            case MOE_PLUS_PLUS -> routeMoePlusPlus(logits, lOff, scratch, experts, weights, outOff);
        }
    }

    private void routeMoePlusPlus(float[] logits, int lOff, float[] scratch, int[] experts, float[] weights, int outOff) {
        int e = m.numExperts();
        MoeConfig.MoePlusPlus pp = m.moePlusPlus();
        System.arraycopy(logits, lOff, scratch, 0, e);
        if (pp.logitsNorm()) {
            // torch.std is the unbiased (n - 1) estimator.
            double mean = 0;
            for (int i = 0; i < e; i++) mean += scratch[i];
            mean /= e;
            double var = 0;
            for (int i = 0; i < e; i++) var += (scratch[i] - mean) * (scratch[i] - mean);
            float std = (float) Math.sqrt(var / (e - 1));
            float div = std / pp.gateNormStd();
            for (int i = 0; i < e; i++) scratch[i] /= div;
        }
        if (pp.mixtralGating()) {
            selectTopK(scratch, 0, e, 2, experts, outOff, null);
            float a = scratch[experts[outOff]];
            float b = scratch[experts[outOff + 1]];
            float eb = (float) Math.exp(b - a);
            weights[outOff] = 1f / (1f + eb);
            weights[outOff + 1] = eb / (1f + eb);
            return;
        }
        VectorOps.softmax(scratch, 0, e);
        selectTopK(scratch, 0, e, 2, experts, outOff, null);
        for (int j = 0; j < 2; j++) {
            int id = experts[outOff + j];
            weights[outOff + j] = id == m.zeroExpertId() ? 0f : scratch[id];
        }
        normalise(weights, outOff, 2, 0f);
    }

    /**
     * Keeps the topk_group best groups (score = max member, or sum of the top two members for DeepSeek-V3) of
     * {@code src[srcOff, srcOff + E)}, writing the masked scores (0 outside kept groups, as HF masks) to
     * {@code dst[E, 2E)}.
     */
    private void maskGroups(float[] src, int srcOff, float[] dst, int e, boolean topTwoSum) {
        int groups = m.numGroups();
        int per = e / groups;
        long keptMask = 0;
        for (int pick = 0; pick < m.topkGroups(); pick++) {
            int best = -1;
            float bestScore = Float.NEGATIVE_INFINITY;
            for (int g = 0; g < groups; g++) {
                if ((keptMask & (1L << g)) != 0) continue;
                float score = groupScore(src, srcOff + g * per, per, topTwoSum);
                if (best < 0 || score > bestScore) {
                    best = g;
                    bestScore = score;
                }
            }
            keptMask |= 1L << best;
        }
        for (int g = 0; g < groups; g++) {
            boolean kept = (keptMask & (1L << g)) != 0;
            for (int i = 0; i < per; i++) dst[e + g * per + i] = kept ? src[srcOff + g * per + i] : 0f;
        }
    }

    private static float groupScore(float[] s, int off, int n, boolean topTwoSum) {
        float first = Float.NEGATIVE_INFINITY;
        float second = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            float v = s[off + i];
            if (v > first) {
                second = first;
                first = v;
            } else if (v > second) {
                second = v;
            }
        }
        return topTwoSum ? first + second : first;
    }

    /** k-pass argmax over s[off, off + n): ids relative to off, descending score, ties to the lower id. */
    static void selectTopK(float[] s, int off, int n, int k, int[] out, int outOff, boolean[] unused) {
        for (int j = 0; j < k; j++) {
            int best = -1;
            float bestScore = Float.NEGATIVE_INFINITY;
            for (int i = 0; i < n; i++) {
                float v = s[off + i];
                if ((best < 0 || v > bestScore) && !taken(out, outOff, j, i)) {
                    best = i;
                    bestScore = v;
                }
            }
            out[outOff + j] = best;
        }
    }

    private static boolean taken(int[] out, int outOff, int count, int id) {
        for (int j = 0; j < count; j++) if (out[outOff + j] == id) return true;
        return false;
    }

    private static void normalise(float[] w, int off, int k, float epsilon) {
        float sum = 0f;
        for (int j = 0; j < k; j++) sum += w[off + j];
        sum += epsilon;
        for (int j = 0; j < k; j++) w[off + j] /= sum;
    }

    private static void scale(float[] w, int off, int k, float factor) {
        if (factor == 1f) return;
        for (int j = 0; j < k; j++) w[off + j] *= factor;
    }
}
