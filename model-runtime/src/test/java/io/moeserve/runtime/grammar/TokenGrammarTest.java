package io.moeserve.runtime.grammar;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The token mask against brute force (every token's bytes run through the automaton from the state, without the
 * trie or any cache), at every step of random generations; and what is generated parses and validates against the
 * schema by an independent check ({@link SchemaCheck}).
 */
class TokenGrammarTest {
    private static final String[] PIECES = {"{\"", "\":", "\": ", ",\"", "\"}", "}}", "]}", "[\"", "\",", "true", "false",
        "null", "nu", "ll", "12", "0.", "e+", "-1", "name", "\"name\"", "age", "\"age", "abc", " \"", "\\u00", "\\n", "é",
        "€", "{}", "[]", ", ", "\"a\"", "bc\"]", "x\"}", "\"kind\": \"x\"", "\"tags\":[", "3]", "\"nick\":null}", "7,", "\"\""};
    static final int EOS;
    static final int SPECIAL;
    static final TokenVocabulary VOCAB;

    static {
        List<byte[]> bytes = new ArrayList<>();
        for (int b = 0; b < 256; b++) bytes.add(new byte[] {(byte) b});
        for (String p : PIECES) bytes.add(p.getBytes(StandardCharsets.UTF_8));
        bytes.add(new byte[] {(byte) 0xE2, (byte) 0x82});
        bytes.add(new byte[0]);
        EOS = bytes.size();
        bytes.add("</s>".getBytes(StandardCharsets.UTF_8));
        SPECIAL = bytes.size();
        bytes.add("<tool_call>".getBytes(StandardCharsets.UTF_8));
        boolean[] excluded = new boolean[bytes.size()];
        excluded[EOS] = true;
        excluded[SPECIAL] = true;
        VOCAB = new TokenVocabulary(bytes.toArray(byte[][]::new), excluded);
    }

    static final String PERSON = """
            {"type": "object", "properties": {
              "name": {"type": "string", "maxLength": 5},
              "age": {"type": "integer"},
              "score": {"type": "number"},
              "ok": {"type": "boolean"},
              "tags": {"type": "array", "items": {"enum": ["a", "bc", 3]}, "minItems": 1, "maxItems": 2},
              "kind": {"const": "x"},
              "nick": {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]}
            }, "required": ["name", "age", "tags"], "additionalProperties": false}""";

    @ParameterizedTest
    @ValueSource(strings = {PERSON, "{\"type\": \"object\"}", "{\"type\": \"array\", \"items\": {\"type\": \"number\"}, \"maxItems\": 4}",
        "{\"anyOf\": [{\"type\": \"integer\"}, {\"enum\": [\"1\", 12, [1]]}]}"})
    void masksEqualBruteForceAndOutputsValidate(String schemaJson) throws Exception {
        CompiledSchema schema = "{\"type\": \"object\"}".equals(schemaJson) ? JsonSchemaCompiler.anyObject()
                : JsonSchemaCompiler.compile(schemaJson);
        JsonNode schemaTree = new ObjectMapper().readTree(schemaJson);
        TokenGrammar grammar = schema.forVocabulary(VOCAB);
        SplittableRandom random = new SplittableRandom(42);
        int finished = 0;
        for (int run = 0; run < 40; run++) {
            GrammarConstraint c = (GrammarConstraint) grammar.newConstraint(new int[] {EOS});
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            float[] logits = new float[VOCAB.size() + 3];
            boolean done = false;
            for (int step = 0; step < 120 && !done; step++) {
                assertArrayEquals(grammar.bruteForceMask(c.state()), grammar.mask(c.state()), "step " + step + " after " + out);
                for (int i = 0; i < logits.length; i++) logits[i] = (float) random.nextDouble();
                c.mask(logits, 0, logits.length);
                assertEquals(Float.NEGATIVE_INFINITY, logits[SPECIAL], "a special token never");
                assertEquals(Float.NEGATIVE_INFINITY, logits[logits.length - 1], "ids beyond the vocabulary never");
                assertEquals(c.accepting(), logits[EOS] != Float.NEGATIVE_INFINITY, "end of sequence exactly when complete");
                int token = pick(logits, random);
                c.accept(token);
                if (token == EOS) done = true;
                else out.writeBytes(VOCAB.bytes[token]);
                if (c.complete()) done = true;
            }
            if (!done) continue;
            finished++;
            byte[] text = out.toByteArray();
            assertTrue(schema.accepts(text), out.toString(StandardCharsets.UTF_8));
            JsonNode value = new ObjectMapper().readTree(text);
            assertTrue(SchemaCheck.valid(schemaTree, value, schemaTree), schemaJson + " rejects " + value);
        }
        assertTrue(finished >= 10, "only " + finished + " of 40 random generations completed in 120 tokens");
    }

    /** A draw from the unmasked tokens (all logits are in [0, 1), so a uniform pick among them is as good). */
    private static int pick(float[] logits, SplittableRandom random) {
        int n = 0;
        for (float l : logits) if (l != Float.NEGATIVE_INFINITY) n++;
        assertTrue(n > 0, "some token is always allowed");
        int k = random.nextInt(n);
        for (int i = 0; i < logits.length; i++) if (logits[i] != Float.NEGATIVE_INFINITY && k-- == 0) return i;
        throw new AssertionError();
    }

    @ParameterizedTest
    @ValueSource(strings = {"{\"type\": \"boolean\"}"})
    void aCompleteValueStopsGeneration(String schemaJson) {
        TokenGrammar grammar = JsonSchemaCompiler.compile(schemaJson).forVocabulary(VOCAB);
        GrammarConstraint c = (GrammarConstraint) grammar.newConstraint(new int[] {EOS});
        c.accept(256 + List.of(PIECES).indexOf("true"));
        assertTrue(c.complete());
        GrammarConstraint prefix = (GrammarConstraint) grammar.newConstraint(new int[] {EOS});
        prefix.accept('t');
        assertFalse(prefix.complete());
        assertFalse(prefix.accepting());
    }
}
