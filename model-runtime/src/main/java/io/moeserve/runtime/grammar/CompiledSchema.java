package io.moeserve.runtime.grammar;

/**
 * A JSON schema compiled into the automaton's grammar ({@link JsonSchemaCompiler}); immutable, shared by every
 * request with the same schema. {@link #forVocabulary} gives the token-level automaton.
 */
public final class CompiledSchema {
    final SchemaNode root;

    CompiledSchema(SchemaNode root) {
        this.root = root;
    }

    /** Whether {@code bytes} is a complete value the schema allows, as the automaton generates them. */
    public boolean accepts(byte[] bytes) {
        GrammarState state = GrammarState.start(root);
        for (byte b : bytes) {
            state = state.advance(b & 0xff);
            if (state.isDead()) return false;
        }
        return state.accepting();
    }

    /** Whether {@code bytes} can be continued into a value the schema allows. */
    public boolean acceptsPrefix(byte[] bytes) {
        GrammarState state = GrammarState.start(root);
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
