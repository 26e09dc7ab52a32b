package io.moeserve.tokenizer;

import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import ai.djl.huggingface.tokenizers.jni.TokenizersLibrary;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Set;

/**
 * A Hugging Face tokenizer loaded from a checkpoint directory: {@code tokenizer.json} through DJL's binding of the
 * Rust {@code tokenizers} library, plus {@code tokenizer_config.json} / {@code chat_template.jinja}.
 *
 * <p>It never truncates and never pads: DJL's default would cut every encoding at 512 tokens when the length
 * limit is not configured, so truncation and padding are switched off explicitly and {@code model_max_length} is
 * only reported ({@link TokenizerConfig#modelMaxLength()}), never applied.
 *
 * <p>Native library: DJL's jar carries {@code libtokenizers} for linux-x86_64, linux-aarch64, osx-aarch64 and
 * win-x86_64 and extracts it on first use into {@code ~/.djl.ai/tokenizers/<version>-cpu-<platform>/}; it needs no
 * network. Set the {@code DJL_CACHE_DIR} environment variable or system property to move that directory (for a
 * read-only home in a container). Encoding and decoding are thread-safe; {@link #close()} must come after the
 * last use.
 */
public final class HfTokenizer implements AutoCloseable {

    static final String TOKENIZER_FILE = "tokenizer.json";
    /**
     * The classes whose transformers implementation rebuilds tokenizer.json's post-processor from add_bos_token and
     * add_eos_token (defaults true and false) when it loads: DeepSeek-V3's tokenizer.json adds no BOS, yet
     * transformers' LlamaTokenizerFast adds one because its config says add_bos_token. Other classes keep the
     * post-processor of tokenizer.json, whatever the flags say.
     */
    private static final Set<String> REBUILT_POST_PROCESSOR = Set.of("LlamaTokenizer", "LlamaTokenizerFast",
            "CodeLlamaTokenizer", "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast");

    private final HuggingFaceTokenizer tokenizer;
    private final TokenizerVocabulary vocabulary;
    private final TokenizerConfig config;
    /** With a rebuilt post-processor: the ids put around a text's encoding (-1: none); else null. */
    private final int[] wrap;
    private volatile Optional<ChatTemplate> chatTemplate;

    private HfTokenizer(HuggingFaceTokenizer tokenizer, TokenizerVocabulary vocabulary, TokenizerConfig config,
                        int[] wrap) {
        this.tokenizer = tokenizer;
        this.vocabulary = vocabulary;
        this.config = config;
        this.wrap = wrap;
    }

    /** {BOS id or -1, EOS id or -1} for the classes that rebuild their post-processor; null for the others. */
    private static int[] wrap(TokenizerConfig config, TokenizerVocabulary vocabulary, Path file)
            throws TokenizerFormatException {
        TokenizerConfig.Processing p = config.processing();
        if (!REBUILT_POST_PROCESSOR.contains(p.tokenizerClass())) return null;
        int bos = p.addBosToken().orElse(true) ? specialId(config.bosToken(), "add_bos_token", vocabulary, file) : -1;
        int eos = p.addEosToken().orElse(false) ? specialId(config.eosToken(), "add_eos_token", vocabulary, file) : -1;
        return new int[] {bos, eos};
    }

    private static int specialId(Optional<String> token, String flag, TokenizerVocabulary vocabulary, Path file)
            throws TokenizerFormatException {
        Integer id = token.map(vocabulary::id).orElse(null);
        // transformers refuses to load such a tokenizer too ("add_bos_token = True but bos_token = None").
        if (id == null) throw new TokenizerFormatException(file + ": " + flag + " is set but its token is not in the vocabulary");
        return id;
    }

    /**
     * Loads the tokenizer of a checkpoint directory.
     *
     * @throws NoSuchFileException      if the directory has no tokenizer.json
     * @throws TokenizerFormatException if tokenizer.json or tokenizer_config.json is malformed (the message names
     *                                  the file)
     */
    public static HfTokenizer load(Path checkpointDir) throws IOException {
        Path file = checkpointDir.resolve(TOKENIZER_FILE);
        if (!Files.isRegularFile(file)) {
            throw new NoSuchFileException(file.toString(), null, "no " + TOKENIZER_FILE + " in checkpoint directory "
                    + checkpointDir + " (only Hugging Face fast tokenizers are supported)");
        }
        TokenizerVocabulary vocabulary = TokenizerVocabulary.read(file);
        TokenizerConfig config = TokenizerConfig.read(checkpointDir);
        HuggingFaceTokenizer tokenizer;
        try {
            tokenizer = HuggingFaceTokenizer.builder()
                    .optTokenizerPath(file)
                    .optAddSpecialTokens(false)
                    .optTruncation(false)
                    .optPadding(false)
                    .build();
        } catch (RuntimeException e) {
            // The Rust side reports a tokenizer.json it cannot use as an unchecked exception.
            throw new TokenizerFormatException(
                    file + " cannot be loaded by the tokenizers library: " + e.getMessage(), e);
        }
        return new HfTokenizer(tokenizer, vocabulary, config, wrap(config, vocabulary, file));
    }

    /** Encodes text without adding special tokens (no BOS): what chat templates expect. */
    public int[] encode(String text) {
        return encode(text, false);
    }

    /**
     * Encodes text, adding the tokenizer's special tokens if asked: its post-processor's (e.g. BOS), or for Llama
     * and Gemma tokenizer classes BOS and EOS as add_bos_token and add_eos_token say, as transformers does.
     *
     * <p>Only the ids are read from the native encoding. DJL's {@code Encoding} also copies every token's string,
     * type, word id, masks and character span into the heap, about 100 bytes a token: a 4 MiB prompt (2.7 million
     * tokens of the synthetic tokenizer) took 300 MiB of heap, and a few at once ran the gateway out of memory.
     */
    public int[] encode(String text, boolean addSpecialTokens) {
        Objects.requireNonNull(text, "text");
        boolean wrapped = addSpecialTokens && wrap != null;
        long encoding = TokenizersLibrary.LIB.encode(tokenizer.getHandle(), text, addSpecialTokens && !wrapped);
        long[] ids;
        try {
            ids = TokenizersLibrary.LIB.getTokenIds(encoding);
        } finally {
            TokenizersLibrary.LIB.deleteEncoding(encoding);
        }
        int before = wrapped && wrap[0] >= 0 ? 1 : 0;
        int after = wrapped && wrap[1] >= 0 ? 1 : 0;
        int[] out = new int[before + ids.length + after];
        if (before == 1) out[0] = wrap[0];
        for (int i = 0; i < ids.length; i++) out[before + i] = Math.toIntExact(ids[i]);
        if (after == 1) out[out.length - 1] = wrap[1];
        return out;
    }

    /**
     * Decodes ids to text as transformers' {@code decode} does: special tokens such as {@code <|im_end|>} are dropped
     * if asked, and with clean_up_tokenization_spaces (Llama 3's config sets it) the spaces that word-level
     * tokenizers put before punctuation and English contractions are removed.
     */
    public String decode(int[] ids, boolean skipSpecialTokens) {
        String text = decode(ids, 0, ids.length, skipSpecialTokens);
        return config.processing().cleanUpSpaces() ? cleanUpSpaces(text) : text;
    }

    /** transformers' clean_up_tokenization, replacement for replacement and in its order. */
    static String cleanUpSpaces(String text) {
        return text.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",").replace(" ' ", "'")
                .replace(" n't", "n't").replace(" 'm", "'m").replace(" 's", "'s").replace(" 've", "'ve")
                .replace(" 're", "'re");
    }

    /** Decodes {@code ids[from, to)}. */
    String decode(int[] ids, int from, int to, boolean skipSpecialTokens) {
        long[] wide = new long[to - from];
        for (int i = from; i < to; i++) {
            if (ids[i] < 0) throw new IllegalArgumentException("negative token id " + ids[i]);
            wide[i - from] = ids[i];
        }
        return tokenizer.decode(wide, skipSpecialTokens);
    }

    /** The id of a vocabulary entry as the vocabulary spells it (e.g. {@code <|im_end|>}, or {@code Ġthe}). */
    public OptionalInt tokenId(String token) {
        Integer id = vocabulary.id(token);
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /** Whether an id is one of the tokenizer's special added tokens. */
    public boolean isSpecialToken(int id) {
        return vocabulary.isSpecial(id);
    }

    /**
     * The number of ids this tokenizer can produce: highest id + 1 over the model vocabulary and the added
     * tokens. A model's embedding table is often larger (Qwen3: 151,669 here, 151,936 rows).
     */
    public int vocabSize() {
        return vocabulary.size();
    }

    public Optional<String> bosToken() {
        return config.bosToken();
    }

    public Optional<String> eosToken() {
        return config.eosToken();
    }

    /** The chat template's source (chat_template.jinja wins over tokenizer_config.json). */
    public Optional<String> chatTemplateSource() {
        return config.chatTemplate();
    }

    /**
     * The chat template compiled with this tokenizer's special tokens; compiled on first use.
     *
     * @throws ChatTemplateException if the template cannot be rendered faithfully
     */
    public Optional<ChatTemplate> chatTemplate() {
        Optional<ChatTemplate> t = chatTemplate;
        if (t == null) {
            t = config.compileChatTemplate();
            chatTemplate = t;
        }
        return t;
    }

    /** Each token's exact bytes and text, for logprobs. */
    public TokenTexts tokenTexts() {
        return vocabulary.texts();
    }

    public TokenizerConfig config() {
        return config;
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
