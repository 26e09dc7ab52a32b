package io.moeserve.cli;

import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.synthetic.SyntheticCheckpointGenerator;
import io.moeserve.runtime.synthetic.SyntheticConfigs;
import io.moeserve.tokenizer.synthetic.SpecialTokenIds;
import io.moeserve.tokenizer.synthetic.SyntheticTokenizerBuilder;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.List;

/**
 * A whole synthetic model directory, as a hub checkpoint has it: the model module's config and random weights
 * ({@link SyntheticCheckpointGenerator}) plus the tokenizer module's ChatML tokenizer
 * ({@link SyntheticTokenizerBuilder}), whose special token ids config.json and generation_config.json then name.
 * What {@code moe synth} writes, and what the gateway and system tests serve.
 */
public final class SyntheticModel {
    private SyntheticModel() {}

    /** Writes the tokenizer, config and weights into {@code dir} (created); returns the parsed config. */
    public static ModelConfig generate(Path dir, SyntheticCheckpointGenerator.Spec spec) {
        int vocab = SyntheticConfigs.vocabSize(spec.arch(), spec.size());
        try {
            SyntheticTokenizerBuilder.write(dir, vocab);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write a synthetic tokenizer to " + dir, e);
        }
        SpecialTokenIds ids = SyntheticTokenizerBuilder.specialTokenIds(vocab);
        return SyntheticCheckpointGenerator.generate(dir, spec, new SyntheticCheckpointGenerator.SpecialTokens(
                ids.bos(), ids.eos(), List.of(ids.eos(), ids.endOfText())));
    }
}
