package io.moeserve.runtime.model;

/**
 * Applies {@link ExpertSkipping} to a step's routing, between the gate and the expert executor.
 *
 * <p>Design. MC-MoE's released code (doc: ../shared/docs/moe-architectures-and-techniques.md §2.3(b)) does, for
 * Mixtral's top-2 softmax weights p1 ≥ p2: drop expert 2 when p2 &lt; β·p1 (rule 1); in prefill, the tokens in the
 * highest τ_h fraction of importance keep both experts (rule 2's guard; its other half, skipping every expert of
 * the lowest τ_l fraction, is disabled in the demo, τ_l = 0, and is not implemented here); then the surviving
 * weights are renormalised, a lone survivor getting weight 1. Generalised, as the doc's Part 3 proposes, to top-k:
 * every slot whose weight is below β × the token's largest weight is dropped, so the top expert always stays
 * (β ≤ 1); the survivors are scaled so that their sum equals the sum of all k weights before skipping. For the
 * families whose top-k weights sum to 1 (Mixtral, OLMoE, Qwen3) that is exactly the paper's renormalisation; for
 * those that do not renormalise (Qwen2-MoE without norm_topk_prob, DeepSeek's routed_scaling_factor) it keeps the
 * token's routed mass as the family's gate set it, which is the same rule read as "renormalise to what it was".
 * The rule compares weights, not selection scores, so DeepSeek-V3's bias-corrected choice does not matter.
 *
 * <p>Token importance. The released code scores a prefill token t of n as attnScore_t · ‖h_t‖₁, where attnScore_t
 * is the head-averaged attention matrix summed over its key axis and divided by (n − t); each softmax row sums to
 * 1, so the score is ‖h_t‖₁ / (n − t), a position prior favouring the last tokens. That is the rule implemented,
 * with h_t the MoE block's input (the post-attention normed hidden state), and n the sequence's tokens in this
 * step: a prompt chunk is a run of consecutive rows of one KV-cache slot. A decode token (a run of one) gets rule
 * 1 only, as in the paper. Whether the paper meant a different attention score is not settled by its code.
 *
 * <p>Per token: each row carries its sequence's threshold (a request's own, or the deployment's), so one step
 * mixes requests with and without skipping. Everything is preallocated for the largest step; a step whose rows
 * all have threshold 0 costs one pass over the thresholds and changes nothing.
 */
final class ExpertSkipper {
    private final ExpertSkipping setting;
    private final int hidden;
    private final float[] threshold;
    private final float[] importance;
    private final boolean[] keepAll;
    /** n·k: the expert id of each skipped slot, -1 elsewhere (what {@link RoutingObserver#onSkipped} sees). */
    final int[] skipped;
    private boolean active;

    ExpertSkipper(ExpertSkipping setting, int hidden, int maxTokens, int topK) {
        this.setting = setting;
        this.hidden = hidden;
        this.threshold = new float[maxTokens];
        this.importance = new float[maxTokens];
        this.keepAll = new boolean[maxTokens];
        this.skipped = new int[maxTokens * Math.max(1, topK)];
    }

    /** Resolves each row's threshold for the step: the row's own, or the deployment's where it has none. */
    void prepare(StepBatch batch) {
        boolean any = false;
        float fallback = setting.threshold();
        for (int i = 0; i < batch.size; i++) {
            float t = batch.skipThresholds[i];
            if (Float.isNaN(t)) t = fallback;
            threshold[i] = t;
            any |= t > 0f;
        }
        active = any;
    }

    /** Whether any row of the step skips (else {@link #apply} need not run). */
    boolean active() {
        return active;
    }

    /**
     * Drops the weak slots of each token: their {@code routed} entry becomes -1 and their weight 0, and the
     * token's surviving weights are renormalised; {@link #skipped} names the dropped experts.
     *
     * @param x       the MoE block's input, n rows of width hidden (for token importance)
     * @param experts n·k expert ids as the gate chose them (not changed)
     * @param weights n·k combine weights, changed where a slot is dropped
     * @param routed  n·k ids the executor will see, -1 where a slot is not its
     * @return the number of (token, expert) pairs dropped
     */
    int apply(StepBatch batch, int n, int k, float[] x, int[] experts, float[] weights, int[] routed) {
        markProtected(batch, n, x);
        int dropped = 0;
        for (int i = 0; i < n; i++) {
            int row = i * k;
            for (int j = 0; j < k; j++) skipped[row + j] = -1;
            float beta = threshold[i];
            if (beta <= 0f || keepAll[i]) continue;
            float top = weights[row];
            float sum = 0f;
            for (int j = 0; j < k; j++) {
                top = Math.max(top, weights[row + j]);
                sum += weights[row + j];
            }
            float limit = beta * top;
            float kept = 0f;
            int droppedHere = 0;
            for (int j = 0; j < k; j++) {
                float w = weights[row + j];
                if (experts[row + j] < 0) continue; // a merged expert's second slot: nothing to skip
                if (w < limit) {
                    skipped[row + j] = experts[row + j];
                    routed[row + j] = -1;
                    weights[row + j] = 0f;
                    droppedHere++;
                } else {
                    kept += w;
                }
            }
            if (droppedHere == 0) continue;
            dropped += droppedHere;
            float scale = sum / kept;
            for (int j = 0; j < k; j++) weights[row + j] *= scale;
        }
        return dropped;
    }

    /** Sets {@link #keepAll} for the most important tokens of each prompt chunk (rule 2's guard). */
    private void markProtected(StepBatch batch, int n, float[] x) {
        float fraction = setting.protectFraction();
        int start = 0;
        while (start < n) {
            int end = start + 1;
            while (end < n && batch.slots[end] == batch.slots[start] && batch.positions[end] == batch.positions[end - 1] + 1) end++;
            int len = end - start;
            for (int t = start; t < end; t++) keepAll[t] = false;
            int protect = len > 1 && threshold[start] > 0f ? (int) (fraction * len) : 0;
            if (protect > 0) {
                for (int t = start; t < end; t++) {
                    float l1 = 0f;
                    for (int d = 0; d < hidden; d++) l1 += Math.abs(x[t * hidden + d]);
                    importance[t] = l1 / (end - t);
                }
                // ⌊τ_h·n⌋ is a small share of the chunk: repeated selection of the largest is cheaper than a sort.
                for (int p = 0; p < protect; p++) {
                    int best = -1;
                    for (int t = start; t < end; t++) {
                        if (!keepAll[t] && (best < 0 || importance[t] > importance[best])) best = t;
                    }
                    keepAll[best] = true;
                }
            }
            start = end;
        }
    }
}
