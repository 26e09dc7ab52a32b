package io.moeserve.router;

import io.grpc.Status;
import io.moeserve.proto.router.v1.StructuredOutput;
import io.moeserve.runtime.grammar.JsonSchemaCompiler;
import io.moeserve.runtime.grammar.TokenGrammar;
import io.moeserve.runtime.grammar.TokenVocabulary;
import io.moeserve.runtime.grammar.UnsupportedSchemaException;
import io.moeserve.runtime.grammar.VocabularyFile;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Structured output's grammars, compiled where sampling happens. The gateway sends the schema as text (compact,
 * and the router is the only one that needs the automaton, which depends on the vocabulary); each distinct schema
 * is compiled once and kept, with its per-state token masks, for the requests that repeat it (agents send the same
 * schema with every turn). The vocabulary's bytes are read from the checkpoint's tokenizer.json on first use.
 *
 * <p>Called on gRPC threads; the returned grammars are shared by the engine's sequences (they are thread-safe).
 */
final class GrammarCache {
    private static final int MAX_SCHEMAS = 64;

    private final Path tokenizerJson;
    private final int vocab;
    private TokenVocabulary vocabulary;
    private final Map<String, TokenGrammar> grammars = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, TokenGrammar> eldest) {
            return size() > MAX_SCHEMAS;
        }
    };

    GrammarCache(Path checkpoint, int vocab) {
        this.tokenizerJson = checkpoint.resolve("tokenizer.json");
        this.vocab = vocab;
    }

    /** The grammar of a request's structured output; INVALID_ARGUMENT naming what is not supported. */
    synchronized TokenGrammar forRequest(StructuredOutput s) {
        String key = s.getPrefix().length() + ":" + s.getPrefix() + s.getSuffix().length() + ":" + s.getSuffix() + s.getJsonSchema();
        TokenGrammar g = grammars.get(key);
        if (g != null) return g;
        try {
            g = JsonSchemaCompiler.compile(s.getJsonSchema()).between(s.getPrefix(), s.getSuffix()).forVocabulary(vocabulary());
        } catch (UnsupportedSchemaException e) {
            throw GenerateRequests.error(Status.INVALID_ARGUMENT, e.getMessage());
        }
        grammars.put(key, g);
        return g;
    }

    private TokenVocabulary vocabulary() {
        if (vocabulary == null) {
            try {
                vocabulary = VocabularyFile.read(tokenizerJson, vocab);
            } catch (IOException | RuntimeException e) {
                throw GenerateRequests.error(Status.FAILED_PRECONDITION, "structured output needs the checkpoint's "
                        + "tokenizer.json, which the router could not read: " + e.getMessage());
            }
        }
        return vocabulary;
    }
}
