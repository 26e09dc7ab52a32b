package io.moeserve.cli;

import io.moeserve.tokenizer.synthetic.SyntheticTokenizerBuilder;
import io.moeserve.tokenizer.synthetic.TokenizerFormat;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * `moe train-tokenizer`: trains the project's byte-level BPE on a text file and writes tokenizer.json and
 * tokenizer_config.json (ChatML special tokens), as tools/eval-model/train.py does for the evaluation model.
 */
@Command(name = "train-tokenizer", description = "Train a byte-level BPE tokenizer (ChatML special tokens) on a text file.")
final class TrainTokenizerCommand implements Callable<Integer> {
    @Option(names = "--text", required = true, description = "UTF-8 training text (the trainer is simple: about a megabyte is practical).")
    Path text;

    @Option(names = "--vocab", defaultValue = "2048", description = "Vocabulary size, special tokens included; default ${DEFAULT-VALUE}.")
    int vocab;

    @Option(names = "--out", required = true, description = "Output directory.")
    Path out;

    @Override
    public Integer call() throws Exception {
        long start = System.nanoTime();
        SyntheticTokenizerBuilder.write(out, vocab, TokenizerFormat.chatml(), Files.readString(text, StandardCharsets.UTF_8));
        System.out.printf("wrote a %d-token tokenizer to %s in %.1f s%n", vocab, out, (System.nanoTime() - start) / 1e9);
        return 0;
    }
}
