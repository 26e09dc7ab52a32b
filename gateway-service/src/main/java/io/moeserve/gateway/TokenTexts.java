package io.moeserve.gateway;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * The text and exact bytes of each single token, for logprobs ({@code token}, {@code bytes}, top_logprobs).
 *
 * <p>A token is often not valid UTF-8 on its own (byte-level BPE splits characters into bytes; SentencePiece has
 * {@code <0xE2>} byte tokens), so decoding it alone gives U+FFFD. The bytes come from the vocabulary itself
 * instead, read from tokenizer.json: GPT-2's byte alphabet mapped back for ByteLevel decoders, {@code <0xNN>}
 * for byte fallback, ▁ as a space for SentencePiece/Metaspace. {@code token} is those bytes as UTF-8 with
 * replacement characters where a token holds part of a character, as OpenAI and vLLM return it.
 *
 * <p>Built once at startup and immutable: no per-token work besides two array reads.
 */
final class TokenTexts {
    private final byte[][] bytes;
    private final String[] texts;

    private enum Decoding { BYTE_LEVEL, BYTE_FALLBACK, METASPACE, PLAIN }

    private static final byte[] NONE = new byte[0];
    private static final char[] BYTE_LEVEL_CHARS = byteLevelAlphabet();
    private static final Map<Character, Byte> BYTE_LEVEL_BYTES = byteLevelInverse();

    private TokenTexts(byte[][] bytes) {
        this.bytes = bytes;
        this.texts = new String[bytes.length];
        for (int i = 0; i < bytes.length; i++) texts[i] = new String(bytes[i], StandardCharsets.UTF_8);
    }

    /** The token's bytes; empty for an id the tokenizer does not have. Not to be modified. */
    byte[] bytes(int id) {
        return id >= 0 && id < bytes.length ? bytes[id] : NONE;
    }

    String text(int id) {
        return id >= 0 && id < texts.length ? texts[id] : "";
    }

    static TokenTexts read(Path tokenizerJson) throws IOException {
        Map<Integer, String> pieces = new HashMap<>();
        Map<Integer, String> added = new HashMap<>();
        Decoding decoding = Decoding.PLAIN;
        ObjectMapper mapper = new ObjectMapper();
        try (JsonParser p = new JsonFactory().createParser(tokenizerJson.toFile())) {
            p.setCodec(mapper);
            if (p.nextToken() != JsonToken.START_OBJECT) throw new IOException(tokenizerJson + " is not a JSON object");
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                p.nextToken();
                switch (field) {
                    case "added_tokens" -> {
                        JsonNode tokens = p.readValueAsTree();
                        for (JsonNode t : tokens) added.put(t.path("id").asInt(), t.path("content").asText());
                    }
                    case "decoder" -> decoding = decoding(p.readValueAsTree());
                    case "model" -> readModel(p, pieces);
                    default -> p.skipChildren();
                }
            }
        }
        int size = 0;
        for (int id : pieces.keySet()) size = Math.max(size, id + 1);
        for (int id : added.keySet()) size = Math.max(size, id + 1);
        byte[][] bytes = new byte[size][];
        for (int id = 0; id < size; id++) {
            String addedContent = added.get(id);
            String piece = pieces.get(id);
            if (addedContent != null) {
                bytes[id] = addedContent.getBytes(StandardCharsets.UTF_8);
            } else if (piece != null) {
                bytes[id] = pieceBytes(piece, decoding);
            } else {
                bytes[id] = NONE;
            }
        }
        return new TokenTexts(bytes);
    }

    private static void readModel(JsonParser p, Map<Integer, String> pieces) throws IOException {
        if (p.currentToken() != JsonToken.START_OBJECT) {
            p.skipChildren();
            return;
        }
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String field = p.currentName();
            JsonToken value = p.nextToken();
            if ("vocab".equals(field) && value == JsonToken.START_OBJECT) {
                // BPE, WordPiece: {"piece": id, ...}
                while (p.nextToken() == JsonToken.FIELD_NAME) {
                    String piece = p.currentName();
                    p.nextToken();
                    pieces.put(p.getIntValue(), piece);
                }
            } else if ("vocab".equals(field) && value == JsonToken.START_ARRAY) {
                // Unigram: [["piece", score], ...], the id is the position
                int id = 0;
                while (p.nextToken() == JsonToken.START_ARRAY) {
                    p.nextToken();
                    pieces.put(id++, p.getText());
                    while (p.nextToken() != JsonToken.END_ARRAY) p.skipChildren();
                }
            } else {
                p.skipChildren();
            }
        }
    }

    private static Decoding decoding(JsonNode decoder) {
        if (decoder == null || decoder.isNull()) return Decoding.PLAIN;
        String all = decoder.toString();
        if (all.contains("\"ByteLevel\"")) return Decoding.BYTE_LEVEL;
        if (all.contains("\"ByteFallback\"")) return Decoding.BYTE_FALLBACK;
        if (all.contains("\"Metaspace\"") || all.contains("▁")) return Decoding.METASPACE;
        return Decoding.PLAIN;
    }

    static byte[] pieceBytes(String piece, Decoding decoding) {
        switch (decoding) {
            case BYTE_LEVEL -> {
                byte[] out = new byte[piece.length()];
                for (int i = 0; i < piece.length(); i++) {
                    Byte b = BYTE_LEVEL_BYTES.get(piece.charAt(i));
                    if (b == null) return piece.getBytes(StandardCharsets.UTF_8);
                    out[i] = b;
                }
                return out;
            }
            case BYTE_FALLBACK -> {
                if (piece.length() == 6 && piece.startsWith("<0x") && piece.endsWith(">")) {
                    try {
                        return new byte[] {(byte) Integer.parseInt(piece.substring(3, 5), 16)};
                    } catch (NumberFormatException e) {
                        // an ordinary piece that looks like one
                    }
                }
                return piece.replace('▁', ' ').getBytes(StandardCharsets.UTF_8);
            }
            case METASPACE -> {
                return piece.replace('▁', ' ').getBytes(StandardCharsets.UTF_8);
            }
            default -> {
                return piece.getBytes(StandardCharsets.UTF_8);
            }
        }
    }

    /** GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others for 256, 257, .... */
    private static char[] byteLevelAlphabet() {
        char[] chars = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            chars[b] = printable ? (char) b : (char) next++;
        }
        return chars;
    }

    private static Map<Character, Byte> byteLevelInverse() {
        Map<Character, Byte> m = new HashMap<>();
        for (int b = 0; b < 256; b++) m.put(BYTE_LEVEL_CHARS[b], (byte) b);
        return m;
    }
}
