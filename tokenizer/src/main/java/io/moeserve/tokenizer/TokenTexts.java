package io.moeserve.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * The text and exact bytes of each single token, for logprobs ({@code token}, {@code bytes}, top_logprobs).
 *
 * <p>A token is often not valid UTF-8 on its own (byte-level BPE splits characters into bytes; SentencePiece has
 * {@code <0xE2>} byte tokens), so decoding it alone gives U+FFFD. The bytes come from the vocabulary itself
 * instead ({@link TokenizerVocabulary}): GPT-2's byte alphabet mapped back for ByteLevel decoders, {@code <0xNN>}
 * for byte fallback, ▁ as a space for SentencePiece/Metaspace. {@link #text} is those bytes as UTF-8 with
 * replacement characters where a token holds part of a character, as OpenAI and vLLM return it.
 *
 * <p>Built once with the tokenizer and immutable: no per-token work besides two array reads.
 */
public final class TokenTexts {
    private final byte[][] bytes;
    private final String[] texts;

    /** How the tokenizer's decoder turns vocabulary pieces back into bytes. */
    enum Decoding {
        BYTE_LEVEL, BYTE_FALLBACK, METASPACE, PLAIN;

        static Decoding of(JsonNode decoder) {
            if (decoder == null || decoder.isNull()) return PLAIN;
            String all = decoder.toString();
            if (all.contains("\"ByteLevel\"")) return BYTE_LEVEL;
            if (all.contains("\"ByteFallback\"")) return BYTE_FALLBACK;
            if (all.contains("\"Metaspace\"") || all.contains("▁")) return METASPACE;
            return PLAIN;
        }
    }

    private static final byte[] NONE = new byte[0];

    private TokenTexts(byte[][] bytes) {
        this.bytes = bytes;
        this.texts = new String[bytes.length];
        for (int i = 0; i < bytes.length; i++) texts[i] = new String(bytes[i], StandardCharsets.UTF_8);
    }

    /** The token's bytes; empty for an id the tokenizer does not have. Not to be modified. */
    public byte[] bytes(int id) {
        return id >= 0 && id < bytes.length ? bytes[id] : NONE;
    }

    /** The token's bytes as UTF-8 text; empty for an id the tokenizer does not have. */
    public String text(int id) {
        return id >= 0 && id < texts.length ? texts[id] : "";
    }

    /** @param pieces the model vocabulary by id; {@code added} the added tokens' contents, which win */
    static TokenTexts of(Map<Integer, String> pieces, Map<Integer, String> added, Decoding decoding) {
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

    static byte[] pieceBytes(String piece, Decoding decoding) {
        switch (decoding) {
            case BYTE_LEVEL -> {
                byte[] out = new byte[piece.length()];
                for (int i = 0; i < piece.length(); i++) {
                    int b = ByteLevelAlphabet.byteOf(piece.charAt(i));
                    if (b < 0) return piece.getBytes(StandardCharsets.UTF_8);
                    out[i] = (byte) b;
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
}
