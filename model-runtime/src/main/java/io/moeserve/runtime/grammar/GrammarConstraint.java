package io.moeserve.runtime.grammar;

import io.moeserve.runtime.generate.TokenConstraint;

/**
 * One sequence's place in a {@link TokenGrammar}: masks its logits to the tokens the automaton allows, end of
 * sequence only where the value is complete. A step whose state was seen before allocates nothing.
 *
 * <p>Should a state allow no token at all (a vocabulary missing some single byte could cut a path), the stop tokens
 * are let through, so that the sequence ends rather than sampling from nothing; with no stop tokens either, the
 * logits are left as they are.
 */
final class GrammarConstraint implements TokenConstraint {
    private final TokenGrammar grammar;
    private final int[] stopIds;
    private final float[] saved;
    private GrammarState state;

    GrammarConstraint(TokenGrammar grammar, int[] stopIds) {
        this.grammar = grammar;
        this.stopIds = stopIds.clone();
        this.saved = new float[stopIds.length];
        this.state = grammar.start();
    }

    @Override
    public void mask(float[] logits, int off, int vocab) {
        long[] mask = grammar.mask(state);
        boolean accepting = state.accepting();
        boolean any = accepting && stopIds.length > 0;
        for (long w : mask) {
            if (w != 0) {
                any = true;
                break;
            }
        }
        if (!any && stopIds.length == 0) return;
        for (int i = 0; i < stopIds.length; i++) saved[i] = logits[off + stopIds[i]];
        int words = mask.length;
        for (int w = 0; w < words; w++) {
            long bits = mask[w];
            if (bits == -1L) continue;
            int base = w << 6;
            int end = Math.min(64, vocab - base);
            for (int j = 0; j < end; j++) if ((bits >>> j & 1) == 0) logits[off + base + j] = Float.NEGATIVE_INFINITY;
        }
        for (int i = words << 6; i < vocab; i++) logits[off + i] = Float.NEGATIVE_INFINITY;
        boolean stopAllowed = accepting || !any || isDeadEnd(mask);
        for (int i = 0; i < stopIds.length; i++) {
            logits[off + stopIds[i]] = stopAllowed ? saved[i] : Float.NEGATIVE_INFINITY;
        }
    }

    private static boolean isDeadEnd(long[] mask) {
        for (long w : mask) if (w != 0) return false;
        return true;
    }

    @Override
    public void accept(int token) {
        for (int s : stopIds) if (s == token) return;
        state = grammar.afterToken(state, token);
    }

    @Override
    public boolean complete() {
        return state.complete();
    }

    GrammarState state() {
        return state;
    }

    /** Whether the output so far is a complete value (for tests). */
    boolean accepting() {
        return state.accepting();
    }
}
