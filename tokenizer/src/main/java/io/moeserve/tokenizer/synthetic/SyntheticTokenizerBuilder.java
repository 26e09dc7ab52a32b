package io.moeserve.tokenizer.synthetic;

import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.core.util.Separators;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.ObjectWriter;
import io.moeserve.tokenizer.ByteLevelAlphabet;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Writes a real Hugging Face tokenizer for synthetic checkpoints: a byte-level BPE {@code tokenizer.json} (as GPT-2
 * and Qwen use) and a {@code tokenizer_config.json} with ChatML special tokens and chat template, or those of
 * another {@link TokenizerFormat} (gpt-oss's harmony).
 */
public final class SyntheticTokenizerBuilder {
    /*
     * Layout for a requested vocabulary size V: ids 0-255 are the 256 bytes (in byte order, spelled in GPT-2's
     * byte alphabet), then one id per token that BPE training on the embedded English corpus creates, then
     * <|endoftext|>, <|im_start|>, <|im_end|> (or the format's special tokens, in its order). Training merges the
     * most frequent pair until the vocabulary would pass V or no pair occurs twice, so every id is below V; the
     * corpus (about 4 KB) runs out of pairs at MAX_TRAINED_TOKENS, so a large V (32,000, 151,936) gives the same,
     * smaller tokenizer, whose real size tokenizerVocabSize(V) reports. A model's embedding may still have V rows; the extra ids are never produced.
     *
     * The tokenizer.json follows the format of GPT-2's: BPE model without unk token, ByteLevel pre-tokenizer with
     * the GPT-2 split regex, ByteLevel post-processor and decoder, no normalizer. Output is byte-identical for the
     * same V on every platform: merges are learned deterministically and JSON is written with "\n" line ends.
     */

    static final String TOKENIZER_FILE = "tokenizer.json";
    static final String CONFIG_FILE = "tokenizer_config.json";
    static final List<String> SPECIAL_TOKENS = List.of("<|endoftext|>", "<|im_start|>", "<|im_end|>");
    /** The context length written as model_max_length; callers may rewrite it to match their model. */
    static final int MODEL_MAX_LENGTH = 32768;
    private static final int BYTE_TOKENS = 256;

    private SyntheticTokenizerBuilder() {
    }

    /** Learned once per JVM: the merges the corpus supports, most frequent first. */
    private static final class Training {
        static final List<BpeTrainer.Merge> MERGES = BpeTrainer.train(resource("corpus.txt"));
    }

    /**
     * Writes tokenizer.json and tokenizer_config.json into {@code dir} (created if missing).
     *
     * @param vocabSize the model's vocabulary size V; at least 259 (bytes plus the three special tokens)
     */
    public static void write(Path dir, int vocabSize) throws IOException {
        write(dir, vocabSize, TokenizerFormat.chatml());
    }

    /**
     * Writes tokenizer.json and tokenizer_config.json of a family's format into {@code dir} (created if missing).
     *
     * @param vocabSize the model's vocabulary size V; at least 256 plus the format's special tokens
     */
    public static void write(Path dir, int vocabSize, TokenizerFormat format) throws IOException {
        write(dir, plan(vocabSize, format, Training.MERGES));
    }

    /**
     * Writes a tokenizer of the format trained on {@code corpus} instead of the embedded corpus (as the evaluation
     * model's, tools/eval-model, is trained on real English text): the same layout, learned tokens up to V.
     *
     * @param vocabSize the vocabulary size V; at least 256 plus the format's special tokens
     */
    public static void write(Path dir, int vocabSize, TokenizerFormat format, String corpus) throws IOException {
        // A merge that spells a token already learned costs no id, so a few spare merges keep V reachable.
        int maxMerges = vocabSize - BYTE_TOKENS + 64;
        write(dir, plan(vocabSize, format, BpeTrainer.train(corpus, maxMerges)));
    }

    private static void write(Path dir, Plan plan) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve(TOKENIZER_FILE), json(tokenizerJson(plan)), StandardCharsets.UTF_8);
        Files.writeString(dir.resolve(CONFIG_FILE), json(tokenizerConfig(plan)), StandardCharsets.UTF_8);
    }

    /** The special token ids {@link #write} uses for this V. */
    public static SpecialTokenIds specialTokenIds(int vocabSize) {
        int first = plan(vocabSize, TokenizerFormat.chatml()).firstSpecial();
        return new SpecialTokenIds(first, first + 1, first + 2);
    }

    /** The id of each of the format's special tokens in the tokenizer {@link #write} writes for this V. */
    public static Map<String, Integer> specialTokenIds(int vocabSize, TokenizerFormat format) {
        Plan plan = plan(vocabSize, format);
        Map<String, Integer> ids = new LinkedHashMap<>();
        for (int i = 0; i < format.specialTokens().size(); i++) ids.put(format.specialTokens().get(i), plan.firstSpecial() + i);
        return ids;
    }

    /** The number of ids the written tokenizer has (at most V): bytes, learned tokens, special tokens. */
    public static int tokenizerVocabSize(int vocabSize) {
        return tokenizerVocabSize(vocabSize, TokenizerFormat.chatml());
    }

    /** The number of ids the tokenizer of this format has (at most V). */
    public static int tokenizerVocabSize(int vocabSize, TokenizerFormat format) {
        return plan(vocabSize, format).firstSpecial() + format.specialTokens().size();
    }

    /** The ChatML chat template written into tokenizer_config.json. */
    public static String chatTemplate() {
        return resource("chatml.jinja");
    }

    /**
     * gpt-oss's official chat template: openai/gpt-oss-20b's chat_template.jinja as of its commit "Update
     * chat_template.jinja (#94)" (2025-08-08), byte for byte (Apache-2.0, OpenAI).
     */
    public static String gptOssChatTemplate() {
        return resource("gpt-oss.jinja");
    }

    /** Which merges and tokens a tokenizer of size V gets; the special tokens follow from firstSpecial on. */
    private record Plan(List<String> tokens, List<BpeTrainer.Merge> merges, int firstSpecial, TokenizerFormat format) {
    }

    private static Plan plan(int vocabSize, TokenizerFormat format) {
        return plan(vocabSize, format, Training.MERGES);
    }

    private static Plan plan(int vocabSize, TokenizerFormat format, List<BpeTrainer.Merge> trained) {
        List<String> special = format.specialTokens();
        int minimum = BYTE_TOKENS + special.size();
        if (vocabSize < minimum) {
            throw new IllegalArgumentException("vocabulary size " + vocabSize + " is below the minimum of " + minimum);
        }
        Set<String> tokens = new LinkedHashSet<>();
        for (int b = 0; b < BYTE_TOKENS; b++) tokens.add(String.valueOf(ByteLevelAlphabet.charOf(b)));
        List<BpeTrainer.Merge> merges = new ArrayList<>();
        int budget = vocabSize - special.size();
        for (BpeTrainer.Merge merge : trained) {
            // Two merges can spell the same token; only a new token costs an id.
            if (!tokens.contains(merge.result()) && tokens.size() == budget) break;
            tokens.add(merge.result());
            merges.add(merge);
        }
        return new Plan(List.copyOf(tokens), List.copyOf(merges), tokens.size(), format);
    }

    private static Map<String, Object> tokenizerJson(Plan plan) {
        Map<String, Object> vocab = new LinkedHashMap<>();
        for (int id = 0; id < plan.tokens().size(); id++) vocab.put(plan.tokens().get(id), id);
        List<String> merges = new ArrayList<>(plan.merges().size());
        for (BpeTrainer.Merge m : plan.merges()) merges.add(m.left() + " " + m.right());

        Map<String, Object> model = new LinkedHashMap<>();
        model.put("type", "BPE");
        model.put("dropout", null);
        model.put("unk_token", null);
        model.put("continuing_subword_prefix", "");
        model.put("end_of_word_suffix", "");
        model.put("fuse_unk", false);
        model.put("byte_fallback", false);
        model.put("ignore_merges", false);
        model.put("vocab", vocab);
        model.put("merges", merges);

        Map<String, Object> root = new LinkedHashMap<>();
        root.put("version", "1.0");
        root.put("truncation", null);
        root.put("padding", null);
        List<Object> added = new ArrayList<>();
        int id = plan.firstSpecial();
        for (String token : plan.format().specialTokens()) added.add(addedToken(id++, token, true));
        root.put("added_tokens", added);
        root.put("normalizer", null);
        root.put("pre_tokenizer", byteLevel(false, true));
        root.put("post_processor", byteLevel(true, false));
        root.put("decoder", byteLevel(true, true));
        root.put("model", model);
        return root;
    }

    private static Map<String, Object> byteLevel(boolean addPrefixSpace, boolean trimOffsets) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("type", "ByteLevel");
        m.put("add_prefix_space", addPrefixSpace);
        m.put("trim_offsets", trimOffsets);
        m.put("use_regex", true);
        return m;
    }

    private static Map<String, Object> addedToken(int id, String content, boolean withId) {
        Map<String, Object> m = new LinkedHashMap<>();
        if (withId) m.put("id", id);
        m.put("content", content);
        m.put("single_word", false);
        m.put("lstrip", false);
        m.put("rstrip", false);
        m.put("normalized", false);
        m.put("special", true);
        return m;
    }

    private static Map<String, Object> tokenizerConfig(Plan plan) {
        Map<String, Object> decoder = new LinkedHashMap<>();
        TokenizerFormat format = plan.format();
        int id = plan.firstSpecial();
        for (String token : format.specialTokens()) decoder.put(Integer.toString(id++), addedToken(0, token, false));
        // Those that are neither bos nor pad, as Qwen's config lists <|im_start|> and <|im_end|>.
        List<String> additional = new ArrayList<>();
        for (String token : format.specialTokens()) {
            if (!token.equals(format.bosToken()) && !token.equals(format.padToken())) additional.add(token);
        }
        Map<String, Object> config = new LinkedHashMap<>();
        config.put("add_bos_token", false);
        config.put("add_prefix_space", false);
        config.put("added_tokens_decoder", decoder);
        config.put("additional_special_tokens", additional);
        config.put("bos_token", format.bosToken());
        config.put("chat_template", format.chatTemplate());
        config.put("clean_up_tokenization_spaces", false);
        config.put("eos_token", format.eosToken());
        config.put("errors", "replace");
        config.put("model_max_length", MODEL_MAX_LENGTH);
        config.put("pad_token", format.padToken());
        config.put("split_special_tokens", false);
        config.put("tokenizer_class", "PreTrainedTokenizerFast");
        config.put("unk_token", null);
        return config;
    }

    private static String json(Object value) throws IOException {
        Separators separators = Separators.createDefaultInstance()
                .withObjectFieldValueSpacing(Separators.Spacing.AFTER); // "key": value, as HF writes it
        DefaultPrettyPrinter printer = new DefaultPrettyPrinter()
                .withSeparators(separators)
                .withObjectIndenter(new DefaultIndenter("  ", "\n"))
                .withArrayIndenter(new DefaultIndenter("  ", "\n"));
        ObjectWriter writer = new ObjectMapper().writer(printer);
        return writer.writeValueAsString(value) + "\n";
    }

    private static String resource(String name) {
        try (InputStream in = SyntheticTokenizerBuilder.class.getResourceAsStream(name)) {
            if (in == null) throw new IllegalStateException("resource " + name + " is missing from the jar");
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
