package io.moeserve.runtime.grammar;

import java.nio.charset.StandardCharsets;

/**
 * A JSON schema compiled into the automaton's grammar ({@link JsonSchemaCompiler}); immutable, shared by every
 * request with the same schema. {@link #forVocabulary} gives the token-level automaton.
 */
public final class CompiledSchema {
    final SchemaNode root;
    private final byte[] prefix;
    private final byte[] suffix;

    CompiledSchema(SchemaNode root) {
        this(root, new byte[0], new byte[0]);
    }

    private CompiledSchema(SchemaNode root, byte[] prefix, byte[] suffix) {
        this.root = root;
        this.prefix = prefix;
        this.suffix = suffix;
    }

    /**
     * The same value with literal text before and after it (a tool-call format's markers, such as Qwen's
     * {@code <tool_call>\n} and {@code \n</tool_call>}).
     */
    public CompiledSchema between(String before, String after) {
        return new CompiledSchema(root, before.getBytes(StandardCharsets.UTF_8), after.getBytes(StandardCharsets.UTF_8));
    }

    /** The automaton's start: the prefix's literal, then the value, then the suffix's literal, each a frame. */
    GrammarState start() {
        Stack s = Stack.EMPTY;
        if (suffix.length > 0) s = new Stack(new Frame.Root(new SchemaNode.Literals(new byte[][] {suffix})), s);
        s = new Stack(new Frame.Root(root), s);
        if (prefix.length > 0) s = new Stack(new Frame.Root(new SchemaNode.Literals(new byte[][] {prefix})), s);
        return new GrammarState(new Stack[] {s});
    }

    /** Whether {@code bytes} is a complete value the schema allows, as the automaton generates them. */
    public boolean accepts(byte[] bytes) {
        GrammarState state = start();
        for (byte b : bytes) {
            state = state.advance(b & 0xff);
            if (state.isDead()) return false;
        }
        return state.accepting();
    }

    /** Whether {@code bytes} can be continued into a value the schema allows. */
    public boolean acceptsPrefix(byte[] bytes) {
        GrammarState state = start();
        for (byte b : bytes) {
            state = state.advance(b & 0xff);
            if (state.isDead()) return false;
        }
        return true;
    }

    /** The token-level automaton over a vocabulary; its caches fill as it is used. */
    public TokenGrammar forVocabulary(TokenVocabulary vocabulary) {
        return new TokenGrammar(this, vocabulary);
    }
}
