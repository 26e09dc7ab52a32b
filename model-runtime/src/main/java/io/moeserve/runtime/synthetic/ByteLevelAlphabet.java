package io.moeserve.runtime.synthetic;

/**
 * GPT-2's reversible mapping of the 256 byte values to printable characters, which byte-level BPE vocabularies
 * are written in (a space byte is "Ġ", a newline "Ċ"). Printable ASCII and Latin-1 bytes map to themselves; the
 * others to U+0100 onwards, in byte order.
 */
final class ByteLevelAlphabet {

    private static final char[] BYTE_TO_CHAR = new char[256];

    static {
        int next = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            BYTE_TO_CHAR[b] = printable ? (char) b : (char) (256 + next++);
        }
    }

    private ByteLevelAlphabet() {
    }

    static char charOf(int unsignedByte) {
        return BYTE_TO_CHAR[unsignedByte];
    }

    /** The byte-level spelling of some UTF-8 bytes: one character per byte. */
    static String encode(byte[] utf8) {
        StringBuilder out = new StringBuilder(utf8.length);
        for (byte b : utf8) out.append(charOf(b & 0xFF));
        return out.toString();
    }
}
