package io.moeserve.runtime.grammar;

import java.util.Arrays;

/**
 * The vocabulary as the automaton sees it: each token's bytes, in a trie so that the tokens sharing a prefix are
 * checked against the automaton once for that prefix. Tokens that must never come out of a grammar (special tokens,
 * which the detokenizer drops, and ids without bytes) are left out; end of sequence is the constraint's business.
 *
 * <p>The trie is flat int arrays: node 0 is the root; each node's children are a sibling list with their byte
 * labels, and the tokens that end at a node a list through {@code tokenNext}. Immutable once built.
 */
public final class TokenVocabulary {
    final int size;
    final int[] firstChild;
    final int[] nextSibling;
    final int[] label;
    final int[] firstToken;
    final int[] tokenNext;
    final byte[][] bytes;

    /**
     * @param bytes    each token id's bytes (empty: never allowed)
     * @param excluded ids never allowed by a grammar (special tokens); may be shorter than {@code bytes}
     */
    public TokenVocabulary(byte[][] bytes, boolean[] excluded) {
        this.size = bytes.length;
        this.bytes = bytes;
        int nodes = 1;
        for (byte[] b : bytes) nodes += b.length;
        int[] child = new int[nodes];
        int[] sibling = new int[nodes];
        int[] lab = new int[nodes];
        int[] first = new int[nodes];
        Arrays.fill(child, -1);
        Arrays.fill(sibling, -1);
        Arrays.fill(first, -1);
        int[] next = new int[bytes.length];
        int used = 1;
        for (int id = 0; id < bytes.length; id++) {
            byte[] b = bytes[id];
            if (b.length == 0 || (id < excluded.length && excluded[id])) continue;
            int node = 0;
            for (byte x : b) {
                int v = x & 0xff;
                int c = child[node];
                while (c >= 0 && lab[c] != v) c = sibling[c];
                if (c < 0) {
                    c = used++;
                    lab[c] = v;
                    sibling[c] = child[node];
                    child[node] = c;
                }
                node = c;
            }
            next[id] = first[node];
            first[node] = id;
        }
        this.firstChild = Arrays.copyOf(child, used);
        this.nextSibling = Arrays.copyOf(sibling, used);
        this.label = Arrays.copyOf(lab, used);
        this.firstToken = Arrays.copyOf(first, used);
        this.tokenNext = next;
    }

    /** Token ids in the vocabulary (the model's vocabulary may be larger: the extra ids are never allowed). */
    public int size() {
        return size;
    }

    /** Trie nodes, the root included. */
    int nodes() {
        return label.length;
    }
}
