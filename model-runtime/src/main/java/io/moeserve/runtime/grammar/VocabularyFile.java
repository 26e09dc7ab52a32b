package io.moeserve.runtime.grammar;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * Each token's bytes from a checkpoint's {@code tokenizer.json}, for the router, which samples but never tokenizes
 * (the build keeps the tokenizer module, and its native library, out of it). The bytes are what the tokenizer
 * module's {@code TokenTexts} gives the gateway: GPT-2's byte alphabet mapped back for ByteLevel decoders,
 * {@code <0xNN>} pieces for byte fallback, ▁ as a space for SentencePiece; added tokens by their content, and
 * special ones excluded (the detokenizer drops them, so they cannot be part of structured output).
 */
public final class VocabularyFile {
    private static final short[] BYTE_LEVEL = new short[512];

    static {
        java.util.Arrays.fill(BYTE_LEVEL, (short) -1);
        int next = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            BYTE_LEVEL[printable ? b : 256 + next++] = (short) b;
        }
    }

    private VocabularyFile() {
    }

    /** Reads {@code tokenizer.json}; {@code size} at least the model's vocabulary size (ids beyond have no bytes). */
    public static TokenVocabulary read(Path tokenizerJson, int size) throws IOException {
        JsonNode root = new ObjectMapper().readTree(Files.readAllBytes(tokenizerJson));
        JsonNode vocab = root.path("model").path("vocab");
        Map<Integer, String> pieces = new HashMap<>();
        if (vocab.isObject()) {
            vocab.fields().forEachRemaining(e -> pieces.put(e.getValue().intValue(), e.getKey()));
        } else if (vocab.isArray()) {
            for (int i = 0; i < vocab.size(); i++) pieces.put(i, vocab.get(i).get(0).asText());
        } else {
            throw new IOException(tokenizerJson + " has no model vocabulary");
        }
        String decoder = root.path("decoder").toString();
        int n = size;
        for (int id : pieces.keySet()) n = Math.max(n, id + 1);
        for (JsonNode t : root.path("added_tokens")) n = Math.max(n, t.path("id").intValue() + 1);
        byte[][] bytes = new byte[n][];
        boolean[] excluded = new boolean[n];
        for (int id = 0; id < n; id++) {
            String piece = pieces.get(id);
            bytes[id] = piece == null ? new byte[0] : pieceBytes(piece, decoder);
        }
        for (JsonNode t : root.path("added_tokens")) {
            int id = t.path("id").intValue();
            bytes[id] = t.path("content").asText().getBytes(StandardCharsets.UTF_8);
            excluded[id] = t.path("special").asBoolean(false);
        }
        return new TokenVocabulary(bytes, excluded);
    }

    static byte[] pieceBytes(String piece, String decoder) {
        if (decoder.contains("\"ByteLevel\"")) {
            byte[] out = new byte[piece.length()];
            for (int i = 0; i < piece.length(); i++) {
                char c = piece.charAt(i);
                int b = c < BYTE_LEVEL.length ? BYTE_LEVEL[c] : -1;
                if (b < 0) return piece.getBytes(StandardCharsets.UTF_8);
                out[i] = (byte) b;
            }
            return out;
        }
        if (decoder.contains("\"ByteFallback\"") && piece.length() == 6 && piece.startsWith("<0x") && piece.endsWith(">")) {
            try {
                return new byte[] {(byte) Integer.parseInt(piece.substring(3, 5), 16)};
            } catch (NumberFormatException e) {
                // an ordinary piece that looks like one
            }
        }
        if (decoder.contains("\"ByteFallback\"") || decoder.contains("\"Metaspace\"") || decoder.contains("▁")) {
            return piece.replace('▁', ' ').getBytes(StandardCharsets.UTF_8);
        }
        return piece.getBytes(StandardCharsets.UTF_8);
    }
}
