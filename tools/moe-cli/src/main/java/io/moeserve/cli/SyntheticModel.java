package io.moeserve.cli;

import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.synthetic.SyntheticCheckpointGenerator;
import io.moeserve.runtime.synthetic.SyntheticConfigs;
import io.moeserve.tokenizer.synthetic.SpecialTokenIds;
import io.moeserve.tokenizer.synthetic.SyntheticTokenizerBuilder;
import io.moeserve.tokenizer.synthetic.TokenizerFormat;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * A whole synthetic model directory, as a hub checkpoint has it: the model module's config and random weights
 * ({@link SyntheticCheckpointGenerator}) plus the tokenizer module's tokenizer in the family's chat format
 * ({@link SyntheticTokenizerBuilder}), whose special token ids config.json and generation_config.json then name.
 * What {@code moe synth} writes, and what the gateway and system tests serve.
 */
public final class SyntheticModel {
    private SyntheticModel() {}

    /**
     * Writes the tokenizer, config and weights into {@code dir} (created); returns the parsed config. gpt-oss gets
     * its own chat format (harmony: its special tokens and official chat template), every other family ChatML.
     */
    public static ModelConfig generate(Path dir, SyntheticCheckpointGenerator.Spec spec) {
        int vocab = SyntheticConfigs.vocabSize(spec.arch(), spec.size());
        TokenizerFormat format = spec.arch() == Architecture.GPT_OSS ? TokenizerFormat.harmony() : TokenizerFormat.chatml();
        try {
            SyntheticTokenizerBuilder.write(dir, vocab, format);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write a synthetic tokenizer to " + dir, e);
        }
        SyntheticCheckpointGenerator.SpecialTokens specials;
        if (format.equals(TokenizerFormat.chatml())) {
            SpecialTokenIds ids = SyntheticTokenizerBuilder.specialTokenIds(vocab);
            specials = new SyntheticCheckpointGenerator.SpecialTokens(ids.bos(), ids.eos(), List.of(ids.eos(), ids.endOfText()));
        } else {
            // As gpt-oss's generation_config.json: a turn ends answered (<|return|>) or calling a tool (<|call|>).
            Map<String, Integer> ids = SyntheticTokenizerBuilder.specialTokenIds(vocab, format);
            int end = ids.get(format.eosToken());
            specials = new SyntheticCheckpointGenerator.SpecialTokens(ids.get(format.bosToken()), end,
                    List.of(end, ids.get("<|endoftext|>"), ids.get("<|call|>")));
        }
        return SyntheticCheckpointGenerator.generate(dir, spec, specials);
    }
}
