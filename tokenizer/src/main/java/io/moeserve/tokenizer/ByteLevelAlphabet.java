package io.moeserve.tokenizer;

/**
 * GPT-2's reversible mapping of the 256 byte values to printable characters ({@code bytes_to_unicode}), which
 * byte-level BPE vocabularies are written in (a space byte is "Ġ", a newline "Ċ"). Printable ASCII and Latin-1
 * bytes map to themselves; the others to U+0100 onwards, in byte order.
 */
public final class ByteLevelAlphabet {

    private static final char[] BYTE_TO_CHAR = new char[256];
    /** Indexed by character, for the characters below U+0100 + 256; -1 where no byte maps to it. */
    private static final short[] CHAR_TO_BYTE = new short[512];

    static {
        java.util.Arrays.fill(CHAR_TO_BYTE, (short) -1);
        int next = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char c = printable ? (char) b : (char) (256 + next++);
            BYTE_TO_CHAR[b] = c;
            CHAR_TO_BYTE[c] = (short) b;
        }
    }

    private ByteLevelAlphabet() {
    }

    /** The character that stands for a byte (0-255). */
    public static char charOf(int unsignedByte) {
        return BYTE_TO_CHAR[unsignedByte];
    }

    /** The byte (0-255) a character stands for, or -1 if it stands for none. */
    public static int byteOf(char c) {
        return c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
    }

    /** The byte-level spelling of some UTF-8 bytes: one character per byte. */
    public static String encode(byte[] utf8) {
        StringBuilder out = new StringBuilder(utf8.length);
        for (byte b : utf8) out.append(charOf(b & 0xFF));
        return out.toString();
    }
}
