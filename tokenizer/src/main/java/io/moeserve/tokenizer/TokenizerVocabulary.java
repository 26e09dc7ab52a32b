package io.moeserve.tokenizer;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.BitSet;
import java.util.HashMap;
import java.util.Map;

/**
 * What a {@code tokenizer.json} says about single tokens: the string-to-id table (model vocabulary plus added
 * tokens), which ids are special, and each token's exact bytes ({@link TokenTexts}). DJL's tokenizer does not
 * expose these, so they are read here, once, with a streaming parser that skips the rest of the file (the merges
 * alone are several megabytes).
 */
final class TokenizerVocabulary {

    private final Map<String, Integer> ids;
    private final BitSet special;
    private final int size;
    private final TokenTexts texts;

    private TokenizerVocabulary(Map<String, Integer> ids, BitSet special, TokenTexts texts) {
        this.ids = ids;
        this.special = special;
        int max = -1;
        for (int id : ids.values()) max = Math.max(max, id);
        this.size = max + 1;
        this.texts = texts;
    }

    static TokenizerVocabulary read(Path tokenizerJson) throws IOException {
        Map<String, Integer> ids = new HashMap<>();
        Map<Integer, String> pieces = new HashMap<>();
        Map<Integer, String> added = new HashMap<>();
        BitSet special = new BitSet();
        TokenTexts.Decoding decoding = TokenTexts.Decoding.PLAIN;
        boolean sawModel = false;
        try (InputStream in = Files.newInputStream(tokenizerJson);
             JsonParser p = new JsonFactory().setCodec(new ObjectMapper()).createParser(in)) {
            if (p.nextToken() != JsonToken.START_OBJECT) throw new IOException("not a JSON object");
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                p.nextToken();
                if (field.equals("model")) {
                    readModel(p, ids, pieces);
                    sawModel = true;
                } else if (field.equals("added_tokens") && p.currentToken() == JsonToken.START_ARRAY) {
                    readAddedTokens(p, ids, added, special);
                } else if (field.equals("decoder")) {
                    decoding = TokenTexts.Decoding.of(p.readValueAsTree());
                } else {
                    p.skipChildren();
                }
            }
        } catch (IOException e) {
            throw new TokenizerFormatException(tokenizerJson + " is not a valid tokenizer.json: " + e.getMessage(), e);
        }
        if (!sawModel || ids.isEmpty()) {
            throw new TokenizerFormatException(tokenizerJson + " has no model vocabulary");
        }
        return new TokenizerVocabulary(ids, special, TokenTexts.of(pieces, added, decoding));
    }

    /** BPE, WordPiece and WordLevel store {"token": id}; Unigram stores [["piece", score], ...] in id order. */
    private static void readModel(JsonParser p, Map<String, Integer> ids, Map<Integer, String> pieces)
            throws IOException {
        if (p.currentToken() != JsonToken.START_OBJECT) throw new IOException("\"model\" is not an object");
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String field = p.currentName();
            JsonToken value = p.nextToken();
            if (field.equals("vocab") && value == JsonToken.START_OBJECT) {
                while (p.nextToken() == JsonToken.FIELD_NAME) {
                    String token = p.currentName();
                    p.nextToken();
                    int id = p.getIntValue();
                    ids.putIfAbsent(token, id);
                    pieces.put(id, token);
                }
            } else if (field.equals("vocab") && value == JsonToken.START_ARRAY) {
                int id = 0;
                while (p.nextToken() == JsonToken.START_ARRAY) {
                    p.nextToken();
                    String token = p.getText();
                    ids.putIfAbsent(token, id);
                    pieces.put(id++, token);
                    while (p.nextToken() != JsonToken.END_ARRAY) p.skipChildren(); // the score
                }
            } else {
                p.skipChildren();
            }
        }
    }

    private static void readAddedTokens(JsonParser p, Map<String, Integer> ids, Map<Integer, String> added,
                                        BitSet special) throws IOException {
        while (p.nextToken() == JsonToken.START_OBJECT) {
            Integer id = null;
            String content = null;
            boolean isSpecial = false;
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                p.nextToken();
                switch (field) {
                    case "id" -> id = p.getIntValue();
                    case "content" -> content = p.getText();
                    case "special" -> isSpecial = p.getBooleanValue();
                    default -> p.skipChildren();
                }
            }
            if (id == null || content == null) throw new IOException("an added token lacks \"id\" or \"content\"");
            ids.put(content, id);
            added.put(id, content);
            if (isSpecial) special.set(id);
        }
    }

    Integer id(String token) {
        return ids.get(token);
    }

    boolean isSpecial(int id) {
        return id >= 0 && special.get(id);
    }

    /** Highest id plus one. */
    int size() {
        return size;
    }

    TokenTexts texts() {
        return texts;
    }
}
