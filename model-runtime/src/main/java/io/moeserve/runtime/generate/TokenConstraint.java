package io.moeserve.runtime.generate;

/**
 * Restricts which tokens a sequence may sample (constrained decoding: structured output). Called by the
 * {@link GenerationLoop} on its thread, once per sampled token, between the raw logits and the sampler.
 */
public interface TokenConstraint {

    /** Sets the logits of the tokens not allowed next to -∞, in {@code logits[off, off + vocab)}. */
    void mask(float[] logits, int off, int vocab);

    /** The token sampled (it was allowed); the constraint moves past it. */
    void accept(int token);

    /** Whether the constrained output is complete and nothing may follow: the sequence stops (STOP). */
    boolean complete();
}
