package io.moeserve.tokenizer;

import java.util.Arrays;

/**
 * Turns generated token ids, one at a time, into the text each one completes, for streaming responses.
 *
 * <p>One instance per stream; not thread-safe.
 */
public final class IncrementalDetokenizer {
    /*
     * Why not decode each token on its own: a token is not a piece of text. Byte-level BPE (GPT-2, Qwen, Llama 3)
     * splits one emoji or CJK character over several tokens, each a few bytes of its UTF-8; SentencePiece models
     * with byte fallback (Llama 2, Mistral) emit <0xE2><0x80><0x9C>; and SentencePiece marks a word's leading space
     * with U+2581, which its decoder drops at the start of a sequence, so "▁world" alone decodes as "world".
     *
     * The standard approach (Hugging Face TGI's decode_token, vLLM's detokenize_incrementally) keeps a small
     * window of recent ids. prefix..read are ids whose text was already emitted, read..end are ids not yet
     * emitted. Each step decodes prefix..read and prefix..end and emits the difference: the prefix gives the
     * decoder the context it needs (the space before "▁world", the first bytes of a character). If the longer
     * text ends in U+FFFD, the last character is still incomplete and nothing is emitted; the ids wait for the
     * next token. After an emission the window slides: prefix = read, read = end. flush() emits what is left at
     * the end, U+FFFD included if the model really produced invalid bytes.
     *
     * Costs: two decodes of a few ids per token (the prefix text is kept between steps while output is held
     * back), no per-token allocation beyond those; the window is compacted in place.
     */

    private final HfTokenizer tokenizer;
    private final boolean skipSpecialTokens;
    private int[] window = new int[16];
    private int length;
    private int read;
    private String prefixText = "";

    /**
     * @param skipSpecialTokens drop special tokens such as {@code <|im_end|>} from the text
     */
    public IncrementalDetokenizer(HfTokenizer tokenizer, boolean skipSpecialTokens) {
        this(tokenizer, skipSpecialTokens, new int[0]);
    }

    /**
     * Starts after a prompt: its last few ids become the first prefix, so that the first generated word gets
     * the leading space a full decode of prompt + output would give it.
     */
    public IncrementalDetokenizer(HfTokenizer tokenizer, boolean skipSpecialTokens, int[] promptIds) {
        this.tokenizer = tokenizer;
        this.skipSpecialTokens = skipSpecialTokens;
        int from = Math.max(0, promptIds.length - 6);
        for (int i = from; i < promptIds.length; i++) append(promptIds[i]);
        read = length;
        prefixText = decodeWindow(read);
    }

    /** Adds one generated id; returns the text it completes, possibly empty. */
    public String add(int tokenId) {
        if (skipSpecialTokens && tokenizer.isSpecialToken(tokenId)) return "";
        append(tokenId);
        String text = decodeWindow(length);
        if (text.length() <= prefixText.length() || text.charAt(text.length() - 1) == '\uFFFD') return "";
        String delta = text.startsWith(prefixText) ? text.substring(prefixText.length()) : text.substring(
                commonPrefixLength(text, prefixText));
        slide();
        return delta;
    }

    /** Ends the stream: returns what was held back (possibly text ending in U+FFFD) and starts afresh. */
    public String flush() {
        String text = decodeWindow(length);
        String rest = text.length() > prefixText.length() ? text.substring(commonPrefixLength(text, prefixText)) : "";
        length = 0;
        read = 0;
        prefixText = "";
        return rest;
    }

    private void append(int id) {
        if (length == window.length) window = Arrays.copyOf(window, length * 2);
        window[length++] = id;
    }

    private String decodeWindow(int to) {
        return to == 0 ? "" : tokenizer.decode(window, 0, to, skipSpecialTokens);
    }

    /** prefix = read, read = end: drop the ids before read and decode the new prefix once. */
    private void slide() {
        int keep = length - read;
        System.arraycopy(window, read, window, 0, keep);
        length = keep;
        read = keep;
        prefixText = decodeWindow(read);
    }

    private static int commonPrefixLength(String a, String b) {
        int n = Math.min(a.length(), b.length());
        int i = 0;
        while (i < n && a.charAt(i) == b.charAt(i)) i++;
        return i;
    }
}
