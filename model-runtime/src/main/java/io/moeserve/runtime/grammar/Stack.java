package io.moeserve.runtime.grammar;

/** An immutable stack of {@link Frame}s, sharing its tail with the stacks it was made from; compared by value. */
final class Stack {
    static final Stack EMPTY = new Stack();

    final Frame top;
    final Stack rest;
    private final int hash;

    private Stack() {
        this.top = null;
        this.rest = null;
        this.hash = 1;
    }

    Stack(Frame top, Stack rest) {
        this.top = top;
        this.rest = rest;
        this.hash = 31 * rest.hash + top.hashCode();
    }

    boolean isEmpty() {
        return this == EMPTY;
    }

    /** Whether every frame from the top down may end here, so that the whole value is complete. */
    boolean canEndAll() {
        for (Stack s = this; s != EMPTY; s = s.rest) if (!s.top.canEnd()) return false;
        return true;
    }

    @Override
    public int hashCode() {
        return hash;
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof Stack other)) return false;
        Stack a = this;
        Stack b = other;
        while (a != b) {
            if (a.hash != b.hash || a == EMPTY || b == EMPTY || !a.top.equals(b.top)) return false;
            a = a.rest;
            b = b.rest;
        }
        return true;
    }
}
