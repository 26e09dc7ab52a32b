package io.moeserve.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalLong;

/**
 * What a checkpoint's {@code tokenizer_config.json} (and {@code chat_template.jinja}) say about special tokens,
 * the context length and the chat template.
 *
 * @param specialTokens           bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token,
 *                                whichever are set (a string or an AddedToken dict in the file; the text here)
 * @param additionalSpecialTokens further special tokens, e.g. Qwen's {@code <|im_start|>}
 * @param modelMaxLength          the context length; empty when absent or "unlimited" (transformers writes 1e30)
 * @param chatTemplate            the Jinja2 chat template: {@code chat_template.jinja} if present, else the
 *                                config's {@code chat_template} (its "default" entry when it is a list)
 * @param processing              the settings that change encode and decode
 */
public record TokenizerConfig(Map<String, String> specialTokens, List<String> additionalSpecialTokens,
                              OptionalLong modelMaxLength, Optional<String> chatTemplate, Processing processing) {

    /**
     * The tokenizer_config.json settings that change what encode and decode give, as transformers reads them.
     *
     * @param addBosToken   add_bos_token, if set
     * @param addEosToken   add_eos_token, if set
     * @param cleanUpSpaces clean_up_tokenization_spaces (transformers' default since 4.45 is false)
     * @param tokenizerClass tokenizer_class, e.g. LlamaTokenizerFast; empty if absent
     */
    public record Processing(Optional<Boolean> addBosToken, Optional<Boolean> addEosToken, boolean cleanUpSpaces,
                             String tokenizerClass) {
        static final Processing DEFAULT = new Processing(Optional.empty(), Optional.empty(), false, "");
    }

    static final String CONFIG_FILE = "tokenizer_config.json";
    static final String TEMPLATE_FILE = "chat_template.jinja";
    private static final List<String> SPECIAL_TOKEN_KEYS =
            List.of("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token");
    /** Lengths at or above this are transformers' "no limit" placeholder (int(1e30)) or nonsense. */
    private static final BigInteger UNLIMITED = BigInteger.valueOf(Long.MAX_VALUE / 2);

    public TokenizerConfig {
        specialTokens = Map.copyOf(specialTokens);
        additionalSpecialTokens = List.copyOf(additionalSpecialTokens);
    }

    /** An empty configuration, for a checkpoint without tokenizer_config.json. */
    public static TokenizerConfig empty() {
        return new TokenizerConfig(Map.of(), List.of(), OptionalLong.empty(), Optional.empty(), Processing.DEFAULT);
    }

    /** Reads the configuration files of a checkpoint directory; missing files give empty values. */
    public static TokenizerConfig read(Path checkpointDir) throws IOException {
        Path configFile = checkpointDir.resolve(CONFIG_FILE);
        TokenizerConfig config = Files.exists(configFile)
                ? parse(Files.readString(configFile), configFile.toString()) : empty();
        Path templateFile = checkpointDir.resolve(TEMPLATE_FILE);
        if (Files.exists(templateFile)) {
            config = new TokenizerConfig(config.specialTokens, config.additionalSpecialTokens, config.modelMaxLength,
                    Optional.of(Files.readString(templateFile)), config.processing);
        }
        return config;
    }

    /**
     * Parses the text of a tokenizer_config.json.
     *
     * @param source names the file in error messages
     * @throws TokenizerFormatException if the text is not a JSON object of the expected shape
     */
    public static TokenizerConfig parse(String json, String source) throws TokenizerFormatException {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(json);
        } catch (IOException e) {
            throw new TokenizerFormatException(source + " is not valid JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) throw new TokenizerFormatException(source + " is not a JSON object");
        Map<String, String> special = new LinkedHashMap<>();
        for (String key : SPECIAL_TOKEN_KEYS) {
            tokenText(root.get(key), source, key).ifPresent(text -> special.put(key, text));
        }
        List<String> additional = new ArrayList<>();
        JsonNode extra = root.get("additional_special_tokens");
        if (extra != null && extra.isArray()) {
            for (JsonNode token : extra) {
                tokenText(token, source, "additional_special_tokens").ifPresent(additional::add);
            }
        }
        Processing processing = new Processing(flag(root.get("add_bos_token")), flag(root.get("add_eos_token")),
                flag(root.get("clean_up_tokenization_spaces")).orElse(false), root.path("tokenizer_class").asText(""));
        return new TokenizerConfig(special, additional, maxLength(root.get("model_max_length")),
                template(root.get("chat_template"), source), processing);
    }

    private static Optional<Boolean> flag(JsonNode node) {
        return node != null && node.isBoolean() ? Optional.of(node.booleanValue()) : Optional.empty();
    }

    /** A special token is a string or an AddedToken dict {"content": ...}; null means unset. */
    private static Optional<String> tokenText(JsonNode node, String source, String key)
            throws TokenizerFormatException {
        if (node == null || node.isNull()) return Optional.empty();
        if (node.isTextual()) return Optional.of(node.asText());
        if (node.isObject() && node.path("content").isTextual()) return Optional.of(node.get("content").asText());
        throw new TokenizerFormatException(source + ": " + key + " is neither a string nor {\"content\": ...}");
    }

    private static OptionalLong maxLength(JsonNode node) {
        if (node == null || !node.isNumber()) return OptionalLong.empty();
        BigInteger value = node.bigIntegerValue();
        if (value.signum() <= 0 || value.compareTo(UNLIMITED) >= 0) return OptionalLong.empty();
        return OptionalLong.of(value.longValue());
    }

    private static Optional<String> template(JsonNode node, String source) throws TokenizerFormatException {
        if (node == null || node.isNull()) return Optional.empty();
        if (node.isTextual()) return Optional.of(node.asText());
        if (node.isArray()) {
            for (JsonNode entry : node) {
                if ("default".equals(entry.path("name").asText(null)) && entry.path("template").isTextual()) {
                    return Optional.of(entry.get("template").asText());
                }
            }
            return Optional.empty();
        }
        throw new TokenizerFormatException(
                source + ": chat_template is neither a string nor a list of named templates");
    }

    public Optional<String> bosToken() {
        return Optional.ofNullable(specialTokens.get("bos_token"));
    }

    public Optional<String> eosToken() {
        return Optional.ofNullable(specialTokens.get("eos_token"));
    }

    public Optional<String> padToken() {
        return Optional.ofNullable(specialTokens.get("pad_token"));
    }

    /** The variables transformers gives a chat template besides the conversation (its special_tokens_map). */
    public Map<String, Object> templateVariables() {
        Map<String, Object> variables = new LinkedHashMap<>(specialTokens);
        if (!additionalSpecialTokens.isEmpty()) variables.put("additional_special_tokens", additionalSpecialTokens);
        return variables;
    }

    /** Compiles the chat template with this configuration's special tokens; empty if there is none. */
    public Optional<ChatTemplate> compileChatTemplate() {
        return chatTemplate.map(source -> ChatTemplate.compile(source, templateVariables()));
    }
}
