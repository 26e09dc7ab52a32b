package io.moeserve.runtime.grammar;

import java.util.List;

/**
 * One level of the pushdown automaton's stack: where the automaton stands inside one JSON value. Frames are
 * immutable values (records: equal frames are equal states, which is what lets {@link GrammarState}s be interned
 * and their token masks cached); a byte makes successor stacks rather than changing a frame.
 *
 * <p>{@link #advance} adds to {@code out} every stack that the byte leads to from {@code this} on top of
 * {@code rest}: the frame's next form on {@code rest}; {@code rest} itself when the byte ends the value; or a child
 * value's frames pushed above the parent's next form, the byte then fed to the child. A frame that may end but also
 * go on (a number's digits, a literal that prefixes another) says so by {@link #canEnd}: the byte is then also
 * offered to the frame below, which is how "12," ends a number and continues its array.
 */
sealed interface Frame {

    void advance(int b, Stack rest, List<Stack> out);

    /** Whether the value may end here (the byte that follows then belongs to the frame below). */
    default boolean canEnd() {
        return false;
    }

    /** Pushes the first frames of a value of {@code node} above {@code parent} and feeds them {@code b}. */
    static void push(SchemaNode node, Stack parent, int b, List<Stack> out) {
        push(node, parent, b, out, 0);
    }

    private static void push(SchemaNode node, Stack parent, int b, List<Stack> out, int depth) {
        if (depth > 64) return; // a $ref cycle that never reaches a value: no byte can start it
        switch (node) {
            case SchemaNode.Literals l -> GrammarState.step(new Stack(new Lit(l, (1L << l.options().length) - 1
                    | (l.options().length == 64 ? -1L : 0L), 0), parent), b, out);
            case SchemaNode.Str s -> GrammarState.step(new Stack(new Str(s, 0, 0, 0, 0, 0), parent), b, out);
            case SchemaNode.Num n -> GrammarState.step(new Stack(new Num(n.integer(), 0), parent), b, out);
            case SchemaNode.Obj o -> GrammarState.step(new Stack(new Obj(o, 0, 0, 0L, 0, 0, false), parent), b, out);
            case SchemaNode.Arr a -> GrammarState.step(new Stack(new Arr(a, 0, 0, false), parent), b, out);
            case SchemaNode.AnyOf any -> {
                for (SchemaNode option : any.options()) push(option, parent, b, out, depth + 1);
            }
            case SchemaNode.Ref r -> push(r.target, parent, b, out, depth + 1);
        }
    }

    /** Before the whole value: the start state's only frame. */
    record Root(SchemaNode node) implements Frame {
        @Override
        public void advance(int b, Stack rest, List<Stack> out) {
            push(node, rest, b, out);
        }
    }

    /** Inside one of several literals: {@code alive} the options still matching, {@code pos} bytes matched. */
    record Lit(SchemaNode.Literals node, long alive, int pos) implements Frame {
        @Override
        public void advance(int b, Stack rest, List<Stack> out) {
            byte[][] options = node.options();
            long next = 0;
            boolean longer = false;
            for (int i = 0; i < options.length; i++) {
                if ((alive >>> i & 1) == 0) continue;
                byte[] o = options[i];
                if (o.length > pos && (o[pos] & 0xff) == b) {
                    next |= 1L << i;
                    if (o.length > pos + 1) longer = true;
                }
            }
            if (next == 0) return;
            out.add(longer ? new Stack(new Lit(node, next, pos + 1), rest) : rest);
        }

        @Override
        public boolean canEnd() {
            byte[][] options = node.options();
            for (int i = 0; i < options.length; i++) if ((alive >>> i & 1) != 0 && options[i].length == pos) return true;
            return false;
        }
    }

    /**
     * A string. Phase 0: before the opening quote; 1: in the body; 2: after a backslash; 3 to 6: after \\u,
     * expecting its first to fourth hex digit. {@code count}: code points so far (clamped where no bound
     * looks at it, so that long strings revisit the same states); {@code need}: UTF-8 continuation bytes still
     * owed, the next in {@code lo..hi}.
     */
    record Str(SchemaNode.Str node, int phase, int count, int need, int lo, int hi) implements Frame {
        @Override
        public void advance(int b, Stack rest, List<Stack> out) {
            switch (phase) {
                case 0 -> {
                    if (b == '"') out.add(new Stack(new Str(node, 1, 0, 0, 0, 0), rest));
                }
                case 1 -> body(b, rest, out);
                case 2 -> {
                    if (b == '"' || b == '\\' || b == '/' || b == 'b' || b == 'f' || b == 'n' || b == 'r' || b == 't') {
                        out.add(new Stack(new Str(node, 1, count, 0, 0, 0), rest));
                    } else if (b == 'u') {
                        out.add(new Stack(new Str(node, 3, count, 0, 0, 0), rest));
                    }
                }
                default -> {
                    boolean hex = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') || (b >= 'A' && b <= 'F');
                    if (hex) out.add(new Stack(new Str(node, phase == 6 ? 1 : phase + 1, count, 0, 0, 0), rest));
                }
            }
        }

        private void body(int b, Stack rest, List<Stack> out) {
            if (need > 0) {
                if (b >= lo && b <= hi) out.add(new Stack(new Str(node, 1, count, need - 1, need > 1 ? 0x80 : 0, need > 1 ? 0xBF : 0), rest));
                return;
            }
            if (b == '"') {
                if (count >= node.minLength()) out.add(rest);
                return;
            }
            int max = node.maxLength();
            if (b < 0x20 || (max >= 0 && count >= max)) return;
            int counted = max >= 0 ? count + 1 : Math.min(count + 1, node.minLength());
            if (b == '\\') {
                out.add(new Stack(new Str(node, 2, counted, 0, 0, 0), rest));
            } else if (b < 0x80) {
                out.add(new Stack(new Str(node, 1, counted, 0, 0, 0), rest));
            } else if (b >= 0xC2 && b <= 0xDF) {
                out.add(new Stack(new Str(node, 1, counted, 1, 0x80, 0xBF), rest));
            } else if (b >= 0xE0 && b <= 0xEF) {
                int l = b == 0xE0 ? 0xA0 : 0x80;
                int h = b == 0xED ? 0x9F : 0xBF;
                out.add(new Stack(new Str(node, 1, counted, 2, l, h), rest));
            } else if (b >= 0xF0 && b <= 0xF4) {
                int l = b == 0xF0 ? 0x90 : 0x80;
                int h = b == 0xF4 ? 0x8F : 0xBF;
                out.add(new Stack(new Str(node, 1, counted, 3, l, h), rest));
            }
        }
    }

    /**
     * A number, JSON's grammar: 0 start, 1 after '-', 2 after a leading 0, 3 in integer digits, 4 after '.', 5 in
     * fraction digits, 6 after 'e', 7 after the exponent's sign, 8 in exponent digits. May end in 2, 3, 5 and 8.
     */
    record Num(boolean integer, int phase) implements Frame {
        @Override
        public void advance(int b, Stack rest, List<Stack> out) {
            int next = next(b);
            if (next >= 0) out.add(new Stack(new Num(integer, next), rest));
        }

        private int next(int b) {
            boolean digit = b >= '0' && b <= '9';
            return switch (phase) {
                case 0 -> b == '-' ? 1 : b == '0' ? 2 : digit ? 3 : -1;
                case 1 -> b == '0' ? 2 : digit ? 3 : -1;
                case 2, 3 -> phase == 3 && digit ? 3 : integer ? -1 : b == '.' ? 4 : b == 'e' || b == 'E' ? 6 : -1;
                case 4 -> digit ? 5 : -1;
                case 5 -> digit ? 5 : b == 'e' || b == 'E' ? 6 : -1;
                case 6 -> b == '+' || b == '-' ? 7 : digit ? 8 : -1;
                default -> digit ? 8 : -1;
            };
        }

        @Override
        public boolean canEnd() {
            return phase == 2 || phase == 3 || phase == 5 || phase == 8;
        }
    }

    /**
     * An object. Phase 0: before '{'; 1: after '{'; 2: inside a declared key, {@code keys} the properties it may
     * still be, {@code pos} bytes of their quoted names matched; 3: after a key; 4: after ':' ({@code spaced}: the
     * one space allowed taken); 5: after a value; 6: after ','. {@code next}: the first property that may still
     * come (they come in order); {@code prop}: the property whose value is being generated.
     */
    record Obj(SchemaNode.Obj node, int phase, int next, long keys, int pos, int prop, boolean spaced) implements Frame {
        @Override
        public void advance(int b, Stack rest, List<Stack> out) {
            int n = node.required().length;
            switch (phase) {
                case 0 -> {
                    if (b == '{') out.add(new Stack(new Obj(node, 1, 0, 0L, 0, 0, false), rest));
                }
                case 1, 6 -> {
                    if (phase == 6 && b == ' ' && !spaced) {
                        out.add(new Stack(new Obj(node, 6, next, 0L, 0, 0, true), rest));
                    } else if (b == '}' && phase == 1 && (node.free() || node.firstRequired(next) == n)) {
                        out.add(rest);
                    } else if (b == '"' && node.free()) {
                        push(JsonSchemaCompiler.KEY, new Stack(new Obj(node, 3, 0, 0L, 0, 0, false), rest), b, out);
                    } else if (b == '"' && next < n) {
                        int last = Math.min(node.firstRequired(next), n - 1);
                        long candidates = 0;
                        for (int i = next; i <= last; i++) candidates |= 1L << i;
                        out.add(new Stack(new Obj(node, 2, next, candidates, 1, 0, false), rest));
                    }
                }
                case 2 -> {
                    byte[][] names = node.quotedNames();
                    long still = 0;
                    for (int i = 0; i < n; i++) {
                        if ((keys >>> i & 1) == 0) continue;
                        byte[] name = names[i];
                        if (name.length <= pos || (name[pos] & 0xff) != b) continue;
                        // A closing quote ends exactly one name: no escaped name has a bare quote inside.
                        if (name.length == pos + 1) {
                            out.add(new Stack(new Obj(node, 3, i + 1, 0L, 0, i, false), rest));
                            return;
                        }
                        still |= 1L << i;
                    }
                    if (still != 0) out.add(new Stack(new Obj(node, 2, next, still, pos + 1, 0, false), rest));
                }
                case 3 -> {
                    if (b == ':') out.add(new Stack(new Obj(node, 4, next, 0L, 0, prop, false), rest));
                }
                case 4 -> {
                    if (b == ' ' && !spaced) {
                        out.add(new Stack(new Obj(node, 4, next, 0L, 0, prop, true), rest));
                    } else {
                        SchemaNode value = node.free() ? JsonSchemaCompiler.ANY : node.values()[prop];
                        push(value, new Stack(new Obj(node, 5, next, 0L, 0, 0, false), rest), b, out);
                    }
                }
                default -> {
                    if (b == ',' && (node.free() || next < n)) {
                        out.add(new Stack(new Obj(node, 6, next, 0L, 0, 0, false), rest));
                    } else if (b == '}' && (node.free() || node.firstRequired(next) == n)) {
                        out.add(rest);
                    }
                }
            }
        }
    }

    /**
     * An array. Phase 0: before '['; 1: after '['; 2: after an item; 3: after ',' ({@code spaced}: the one space
     * taken). {@code count}: items so far (clamped at minItems when there is no maxItems).
     */
    record Arr(SchemaNode.Arr node, int phase, int count, boolean spaced) implements Frame {
        @Override
        public void advance(int b, Stack rest, List<Stack> out) {
            int counted = node.max >= 0 ? count + 1 : Math.min(count + 1, node.min);
            switch (phase) {
                case 0 -> {
                    if (b == '[') out.add(new Stack(new Arr(node, 1, 0, false), rest));
                }
                case 1 -> {
                    if (b == ']') {
                        if (node.min == 0) out.add(rest);
                    } else if (node.max != 0) {
                        push(node.items, new Stack(new Arr(node, 2, counted, false), rest), b, out);
                    }
                }
                case 2 -> {
                    if (b == ',' && (node.max < 0 || count < node.max)) out.add(new Stack(new Arr(node, 3, count, false), rest));
                    else if (b == ']' && count >= node.min) out.add(rest);
                }
                default -> {
                    if (b == ' ' && !spaced) out.add(new Stack(new Arr(node, 3, count, true), rest));
                    else push(node.items, new Stack(new Arr(node, 2, counted, false), rest), b, out);
                }
            }
        }
    }
}
