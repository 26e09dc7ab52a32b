package io.moeserve.tokenizer.synthetic;

import java.util.List;
import java.util.Objects;

/**
 * A model family's special tokens and chat template, for a synthetic tokenizer that speaks its chat format.
 *
 * @param specialTokens the added special tokens, in id order after the learned tokens
 * @param bosToken      tokenizer_config.json's bos_token; null for none
 * @param eosToken      tokenizer_config.json's eos_token (the end of the assistant's turn)
 * @param padToken      tokenizer_config.json's pad_token
 * @param chatTemplate  the Jinja chat template written into tokenizer_config.json
 */
public record TokenizerFormat(List<String> specialTokens, String bosToken, String eosToken, String padToken,
                              String chatTemplate) {

    public TokenizerFormat {
        specialTokens = List.copyOf(specialTokens);
        Objects.requireNonNull(eosToken, "eosToken");
        Objects.requireNonNull(padToken, "padToken");
        Objects.requireNonNull(chatTemplate, "chatTemplate");
        for (String token : new String[] {bosToken, eosToken, padToken}) {
            if (token != null && !specialTokens.contains(token)) {
                throw new IllegalArgumentException(token + " is not one of the special tokens " + specialTokens);
            }
        }
    }

    /** ChatML (Qwen's): {@code <|endoftext|>}, {@code <|im_start|>}, {@code <|im_end|>}; the default. */
    public static TokenizerFormat chatml() {
        return new TokenizerFormat(SyntheticTokenizerBuilder.SPECIAL_TOKENS, null, "<|im_end|>", "<|endoftext|>",
                SyntheticTokenizerBuilder.chatTemplate());
    }

    /**
     * gpt-oss's harmony format: its special tokens as its tokenizer_config.json names them (bos
     * {@code <|startoftext|>}, eos {@code <|return|>}, pad {@code <|endoftext|>}) and its official chat template.
     * A harmony turn ends with {@code <|return|>} (answered) or {@code <|call|>} (calling a tool), so a checkpoint's
     * generation_config.json lists both, with {@code <|endoftext|>}, as gpt-oss's does.
     */
    public static TokenizerFormat harmony() {
        return new TokenizerFormat(List.of("<|startoftext|>", "<|endoftext|>", "<|return|>", "<|constrain|>",
                "<|channel|>", "<|start|>", "<|end|>", "<|message|>", "<|call|>"), "<|startoftext|>", "<|return|>",
                "<|endoftext|>", SyntheticTokenizerBuilder.gptOssChatTemplate());
    }
}
