package io.moeserve.runtime.generate;

import io.moeserve.runtime.model.ExpertSkipping;

/**
 * One sequence in the {@link GenerationLoop}: its prompt and limits, its sampler, where it stands, and the tokens
 * it has produced. Subclasses add where the tokens go ({@link #onToken}) and whatever their server needs (a
 * stream, a deadline).
 *
 * <p>The loop's fields are package-private and changed only by the thread that runs the loop; subclasses and
 * other threads read them through the accessors from that thread only, or after the sequence is done.
 */
public class Sequence {
    /** Where a sequence stands: not yet admitted, running its prompt through the model, generating, ended. */
    public enum Phase { WAITING, PREFILL, DECODE, DONE }

    private final int[] prompt;
    private final int maxNewTokens;
    private final Sampler sampler;
    private final int[] stopIds;
    final int[] generated;
    private float skipThreshold = Float.NaN;
    private TokenConstraint constraint;

    // Changed by the loop's thread only.
    Phase phase = Phase.WAITING;
    int slot = -1;
    /** Prompt tokens already run through the model. */
    int prefilled;
    /**
     * Tokens the prefill runs: the prompt, or after a preemption the prompt and every token generated so far
     * (their keys and values are recomputed, and the last one's logits give the next token).
     */
    int prefillEnd;
    /** Times the sequence was preempted (its KV cache dropped, to be recomputed). */
    int preemptions;
    /** Prompt tokens in the step being computed. */
    int chunk;
    int generatedCount;
    FinishReason finishReason;
    // Prefix caching (the loop's thread only): the hash chain of the sequence's full blocks, how many of them are
    // hashed and registered, whether its prompt was looked up, and whether its keys and values may be shared.
    long[] blockHashes;
    int hashedBlocks;
    int registeredBlocks;
    boolean prefixQueried;
    /** This step: the next block of its prefix is being computed by a sequence admitted before it; wait for it. */
    boolean waitsForPrefix;
    boolean uncacheable;
    int cachedTokens;

    /**
     * @param prompt       at least one token
     * @param maxNewTokens most tokens to generate; 0 ends the sequence with LENGTH once its prompt has run
     * @param stopIds      tokens that end the sequence (the stop token is the last one produced)
     */
    public Sequence(int[] prompt, int maxNewTokens, Sampler sampler, int[] stopIds) {
        if (prompt.length == 0) throw new IllegalArgumentException("the prompt must hold at least one token");
        if (maxNewTokens < 0) throw new IllegalArgumentException("max_new_tokens must be ≥ 0, got " + maxNewTokens);
        this.prompt = prompt;
        this.maxNewTokens = maxNewTokens;
        this.sampler = sampler;
        this.stopIds = stopIds;
        this.generated = new int[maxNewTokens];
        this.prefillEnd = prompt.length;
    }

    /**
     * The logits of the sequence's last position, about to be sampled from (after its prompt, then after each
     * token). Called on the loop's thread; the row must not be changed, nor kept after the call.
     */
    protected void onLogits(float[] logits, int offset, int vocab) {}

    /**
     * A token was produced. {@code finish} is null unless this token ends the sequence (STOP: it is a stop token;
     * LENGTH: the last allowed). Called on the loop's thread, which must not block on it.
     */
    protected void onToken(int token, FinishReason finish) {}

    /**
     * Sets this sequence's own expert skip threshold ({@code ExpertSkipping}), in [0, 1] (0 = none), instead of the
     * model's setting; before the sequence is admitted.
     */
    public final void setSkipThreshold(float threshold) {
        if (!ExpertSkipping.validThreshold(threshold)) {
            throw new IllegalArgumentException("the expert skip threshold must lie in [0, 1], got " + threshold);
        }
        this.skipThreshold = threshold;
    }

    /** This sequence's expert skip threshold, NaN where it takes the model's. */
    public final float skipThreshold() {
        return skipThreshold;
    }

    /**
     * Keeps the keys and values this sequence computes from now on out of the prefix cache: they are not what the
     * model computes for its tokens (degraded mode masked experts in its rows). It still takes cached blocks.
     */
    public final void excludeFromPrefixCache() {
        uncacheable = true;
    }

    /** Restricts what the sequence may generate (structured output); set before admission. */
    public final void constrain(TokenConstraint constraint) {
        if (phase != Phase.WAITING) throw new IllegalStateException("the sequence is already admitted");
        this.constraint = constraint;
    }

    /** The sequence's constraint, null when it has none. */
    public final TokenConstraint constraint() {
        return constraint;
    }

    public final boolean isStop(int token) {
        for (int s : stopIds) if (s == token) return true;
        return false;
    }

    /** Position of the next token fed to the model: prompt plus generated tokens. */
    public final int length() {
        return prompt.length + generatedCount;
    }

    public final int[] prompt() {
        return prompt;
    }

    public final int maxNewTokens() {
        return maxNewTokens;
    }

    public final Sampler sampler() {
        return sampler;
    }

    public final Phase phase() {
        return phase;
    }

    /** The sequence's KV-cache slot, -1 when it holds none. */
    public final int slot() {
        return slot;
    }

    /** Times the loop preempted this sequence to free KV cache for older ones ({@link GenerationLoop}). */
    public final int preemptions() {
        return preemptions;
    }

    /** The token at position {@code pos}: the prompt's, then the generated ones. */
    final int tokenAt(int pos) {
        return pos < prompt.length ? prompt[pos] : generated[pos - prompt.length];
    }

    public final int generatedCount() {
        return generatedCount;
    }

    /** A copy of the tokens produced so far. */
    public final int[] generated() {
        return java.util.Arrays.copyOf(generated, generatedCount);
    }

    /** Prompt tokens whose keys and values were taken from the prefix cache instead of computed. */
    public final int cachedPromptTokens() {
        return cachedTokens;
    }

    /** Why the sequence ended, or null while it runs (or when it was ended from outside, {@link GenerationLoop#end}). */
    public final FinishReason finishReason() {
        return finishReason;
    }
}
