package io.moeserve.tokenizer.synthetic;

/**
 * The ids of a synthetic tokenizer's special tokens, for config.json and generation_config.json.
 *
 * @param endOfText {@code <|endoftext|>}: also the padding token and, as in Qwen's configs, bos_token_id
 * @param imStart   {@code <|im_start|>}
 * @param imEnd     {@code <|im_end|>}: the end of a chat turn and the tokenizer's eos_token
 */
public record SpecialTokenIds(int endOfText, int imStart, int imEnd) {

    /** What generation stops at (tokenizer_config.json's eos_token). */
    public int eos() {
        return imEnd;
    }

    public int pad() {
        return endOfText;
    }

    /** Qwen-style configs put {@code <|endoftext|>} here although the tokenizer adds no BOS. */
    public int bos() {
        return endOfText;
    }
}
