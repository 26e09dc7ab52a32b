package io.moeserve.runtime.grammar;

import io.moeserve.runtime.generate.TokenConstraint;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A compiled schema over a vocabulary: the token-level automaton whose masks sampling applies.
 *
 * <p>Design. The byte-level pushdown automaton ({@link Frame}, {@link GrammarState}) is run lazily as a DFA: every
 * state reached is interned (equal stacks, one object), and each interned state keeps its successor per byte and,
 * once asked, its token mask: the set of tokens whose whole byte string the automaton accepts from it, found by
 * walking the vocabulary's trie (a token is allowed iff every byte of it leads to a live state; a prefix shared by
 * many tokens is walked once, and a dead prefix prunes its whole subtree). This is the per-state mask cache that
 * outlines builds ahead of time for regular grammars, built on demand because a JSON grammar's stack makes the
 * state space unbounded ahead of time, while generation revisits few states: inside a string, a number or between
 * properties the state repeats (counters that no bound looks at are clamped so that it does). A step whose state
 * was seen before costs a lookup and the mask's application; a new state costs one trie walk (xgrammar avoids
 * even that by splitting context-independent tokens per grammar position; we measured that the simpler cache is
 * enough, see BENCHMARKS.md).
 *
 * <p>Thread-safety: the intern table is concurrent and the per-state caches are filled idempotently (racing threads
 * compute equal values), so one instance may serve every sequence of a router. The table is cleared when it grows
 * past {@link #MAX_STATES} (recursive schemas such as json_object's have unboundedly many states); states already
 * held keep working, only their cache is no longer shared.
 */
public final class TokenGrammar {
    static final int MAX_STATES = 50_000;

    private final TokenVocabulary vocabulary;
    private final ConcurrentHashMap<GrammarState, GrammarState> interned = new ConcurrentHashMap<>();
    private final GrammarState start;

    TokenGrammar(CompiledSchema schema, TokenVocabulary vocabulary) {
        this.vocabulary = vocabulary;
        this.start = intern(schema.start());
    }

    /** A constraint for one sequence; {@code stopIds} are allowed exactly where the value is complete. */
    public TokenConstraint newConstraint(int[] stopIds) {
        return new GrammarConstraint(this, stopIds);
    }

    public TokenVocabulary vocabulary() {
        return vocabulary;
    }

    GrammarState start() {
        return start;
    }

    private GrammarState intern(GrammarState s) {
        if (interned.size() > MAX_STATES) interned.clear();
        GrammarState prior = interned.putIfAbsent(s, s);
        return prior != null ? prior : s;
    }

    /** The interned state after byte {@code b}. */
    GrammarState next(GrammarState s, int b) {
        GrammarState[] next = s.next;
        if (next == null) {
            next = new GrammarState[256];
            s.next = next;
        }
        GrammarState n = next[b];
        if (n == null) {
            n = s.advance(b);
            if (!n.isDead()) n = intern(n);
            next[b] = n;
        }
        return n;
    }

    /** The state after a token's bytes ({@link GrammarState#DEAD} if the token is not allowed). */
    GrammarState afterToken(GrammarState s, int token) {
        byte[] bytes = token >= 0 && token < vocabulary.size ? vocabulary.bytes[token] : new byte[0];
        if (bytes.length == 0) return GrammarState.DEAD;
        for (int i = 0; i < bytes.length && !s.isDead(); i++) s = next(s, bytes[i] & 0xff);
        return s;
    }

    /** The tokens allowed from {@code s}, one bit per id. */
    long[] mask(GrammarState s) {
        long[] m = s.mask;
        if (m == null) {
            m = new long[(vocabulary.size + 63) >>> 6];
            walk(0, s, m);
            s.mask = m;
        }
        return m;
    }

    private void walk(int node, GrammarState s, long[] mask) {
        TokenVocabulary v = vocabulary;
        for (int c = v.firstChild[node]; c >= 0; c = v.nextSibling[c]) {
            GrammarState n = next(s, v.label[c]);
            if (n.isDead()) continue;
            for (int t = v.firstToken[c]; t >= 0; t = v.tokenNext[t]) mask[t >>> 6] |= 1L << t;
            walk(c, n, mask);
        }
    }

    /** The same mask by brute force: each token's bytes run through the automaton from {@code s} (for tests). */
    long[] bruteForceMask(GrammarState s) {
        long[] m = new long[(vocabulary.size + 63) >>> 6];
        for (int t = 0; t < vocabulary.size; t++) {
            if (vocabulary.firstToken.length == 0) break;
            GrammarState x = s;
            byte[] bytes = vocabulary.bytes[t];
            if (bytes.length == 0 || !inTrie(t)) continue;
            for (int i = 0; i < bytes.length && !x.isDead(); i++) x = x.advance(bytes[i] & 0xff);
            if (!x.isDead()) m[t >>> 6] |= 1L << t;
        }
        return m;
    }

    private boolean inTrie(int token) {
        byte[] bytes = vocabulary.bytes[token];
        int node = 0;
        for (byte x : bytes) {
            int c = vocabulary.firstChild[node];
            while (c >= 0 && vocabulary.label[c] != (x & 0xff)) c = vocabulary.nextSibling[c];
            if (c < 0) return false;
            node = c;
        }
        for (int t = vocabulary.firstToken[node]; t >= 0; t = vocabulary.tokenNext[t]) if (t == token) return true;
        return false;
    }
}
