package io.moeserve.runtime.grammar;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Where the automaton stands after some bytes: every stack still possible (more than one only where anyOf or a
 * literal prefixing another leaves the choice open), compared by value. Interned by a {@link TokenGrammar}, a
 * state also carries its transitions by byte and its token mask, both filled the first time they are asked for:
 * the automaton becomes, lazily, a DFA over the states generation actually visits.
 */
final class GrammarState {
    /** No stack left: the bytes so far cannot be continued into a valid value. */
    static final GrammarState DEAD = new GrammarState(new Stack[0]);

    final Stack[] stacks;
    private final int hash;
    // Filled by TokenGrammar for interned states, on first use (most states are passed through inside a token and
    // need only a few transitions). Written racily with equal values (interned states, a mask computed the same way
    // every time), whose fields are final, so a thread sees a complete value or null and at worst recomputes it.
    GrammarState[] next;
    volatile long[] mask;

    GrammarState(Stack[] stacks) {
        this.stacks = stacks;
        this.hash = Arrays.hashCode(stacks);
    }

    /** The state after byte {@code b} (0-255), {@link #DEAD} if none; computed, never cached. */
    GrammarState advance(int b) {
        List<Stack> out = new ArrayList<>(2);
        for (Stack s : stacks) step(s, b, out);
        if (out.isEmpty()) return DEAD;
        List<Stack> unique = new ArrayList<>(out.size());
        for (Stack s : out) if (!unique.contains(s)) unique.add(s);
        return new GrammarState(unique.toArray(Stack[]::new));
    }

    static void step(Stack s, int b, List<Stack> out) {
        if (s.isEmpty()) return;
        s.top.advance(b, s.rest, out);
        if (s.top.canEnd()) step(s.rest, b, out);
    }

    boolean isDead() {
        return stacks.length == 0;
    }

    /** Whether the bytes so far are a complete value (end of sequence allowed). */
    boolean accepting() {
        for (Stack s : stacks) if (s.canEndAll()) return true;
        return false;
    }

    /** Whether the value is complete and no byte may follow: generation must stop. */
    boolean complete() {
        if (stacks.length == 0) return false;
        for (Stack s : stacks) if (!s.isEmpty()) return false;
        return true;
    }

    @Override
    public int hashCode() {
        return hash;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof GrammarState g && (g == this || (g.hash == hash && Arrays.equals(g.stacks, stacks)));
    }
}
