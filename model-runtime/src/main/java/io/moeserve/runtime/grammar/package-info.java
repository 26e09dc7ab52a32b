/**
 * Structured output by constrained decoding. API: {@link io.moeserve.runtime.grammar.JsonSchemaCompiler} (schema
 * text to a {@link io.moeserve.runtime.grammar.CompiledSchema}, or {@link
 * io.moeserve.runtime.grammar.UnsupportedSchemaException} naming what it does not implement), {@link
 * io.moeserve.runtime.grammar.VocabularyFile} and {@link io.moeserve.runtime.grammar.TokenVocabulary} (each token's
 * bytes), {@link io.moeserve.runtime.grammar.TokenGrammar} (the token-level automaton, whose constraints the
 * generation loop applies). The automaton itself (frames, stacks, states) is internal.
 */
package io.moeserve.runtime.grammar;
