package io.moeserve.gateway;

import io.moeserve.gateway.openai.OpenAiException;
import io.moeserve.gateway.openai.TemplateOptions;
import io.moeserve.proto.ModelSettings;
import io.moeserve.tokenizer.ChatMessage;
import io.moeserve.tokenizer.ChatTemplate;
import io.moeserve.tokenizer.ChatTemplateException;
import io.moeserve.tokenizer.HfTokenizer;
import io.moeserve.tokenizer.TokenTexts;
import io.quarkus.runtime.Startup;
import jakarta.annotation.PostConstruct;
import jakarta.annotation.PreDestroy;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.jboss.logging.Logger;

/** The served checkpoint as the gateway sees it: its name, tokenizer, chat template and token texts. */
@Startup
@ApplicationScoped
public class ServedModel {
    private static final Logger LOG = Logger.getLogger(ServedModel.class);

    @Inject
    ModelSettings settings;

    private String id;
    private Path dir;
    private HfTokenizer tokenizer;
    private Optional<ChatTemplate> chatTemplate;
    private String chatTemplateProblem;
    private TokenTexts tokenTexts;

    @PostConstruct
    void load() {
        dir = settings.directory();
        id = settings.resolvedId();
        if (!Files.isDirectory(dir)) {
            throw new IllegalStateException("moe.model.path: " + dir + " is not a directory (it must hold the "
                    + "checkpoint's tokenizer.json and tokenizer_config.json)");
        }
        try {
            tokenizer = HfTokenizer.load(dir);
            tokenTexts = tokenizer.tokenTexts();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot load the tokenizer of " + dir + ": " + e.getMessage(), e);
        }
        try {
            chatTemplate = tokenizer.chatTemplate();
            if (chatTemplate.isEmpty()) chatTemplateProblem = "the checkpoint has no chat template";
        } catch (ChatTemplateException e) {
            // Completions still work; chat requests get this reason.
            chatTemplate = Optional.empty();
            chatTemplateProblem = "the checkpoint's chat template cannot be rendered: " + e.getMessage();
        }
        if (chatTemplateProblem != null) LOG.warnf("%s: /v1/chat/completions is unavailable: %s", dir, chatTemplateProblem);
        LOG.infof("serving %s as '%s' (tokenizer: %d ids)", dir, id, tokenizer.vocabSize());
    }

    @PreDestroy
    void close() {
        if (tokenizer != null) tokenizer.close();
    }

    public String id() {
        return id;
    }

    public HfTokenizer tokenizer() {
        return tokenizer;
    }

    public TokenTexts tokenTexts() {
        return tokenTexts;
    }

    /** 404 unless the request names this model. */
    void requireServed(String model) {
        if (!id.equals(model)) throw OpenAiException.modelNotFound(model);
    }

    /**
     * The prompt of a chat request: the chat template rendered with the generation prompt, then encoded without
     * adding special tokens, as transformers' {@code apply_chat_template(tokenize=True)} does: the template
     * writes BOS itself where the model wants one, and adding it again would double it.
     */
    int[] chatPrompt(List<ChatMessage> messages, List<Map<String, Object>> tools, Map<String, Object> kwargs,
                     TemplateOptions options) {
        return tokenizer.encode(chatText(messages, tools, kwargs, options), false);
    }

    /**
     * The chat template's text. With continue_final_message the text is cut after the final message's content,
     * as transformers' apply_chat_template cuts it: at the last occurrence of the stripped content, keeping its
     * leading-stripped length when the template kept the message's spacing, else its stripped length.
     */
    String chatText(List<ChatMessage> messages, List<Map<String, Object>> tools, Map<String, Object> kwargs,
                    TemplateOptions options) {
        if (chatTemplate.isEmpty()) {
            throw OpenAiException.server(500, null, "Chat completions are unavailable for this model: "
                    + chatTemplateProblem + ". Use /v1/completions.");
        }
        String text;
        try {
            text = chatTemplate.get().render(messages, tools, options.addGenerationPrompt(), kwargs);
        } catch (ChatTemplateException e) {
            throw OpenAiException.invalid("messages", "The model's chat template rejected these messages: "
                    + e.getMessage());
        } catch (IllegalArgumentException e) {
            throw OpenAiException.invalid("chat_template_kwargs", e.getMessage());
        }
        if (!options.continueFinalMessage()) return text;
        String last = messages.getLast().content();
        int at = last == null ? -1 : text.lastIndexOf(last.strip());
        if (at < 0) {
            throw OpenAiException.invalid("continue_final_message", "'continue_final_message' is set but the final "
                    + "message does not appear in the chat after applying the chat template.");
        }
        boolean spacingKept = text.startsWith(last.stripLeading(), at);
        return text.substring(0, at + (spacingKept ? last.stripLeading().length() : last.strip().length()));
    }

    /**
     * The prompt of a text completion: encoded with the tokenizer's special tokens (its post-processor's BOS,
     * if any), as vLLM and transformers do for plain text.
     */
    int[] textPrompt(String text) {
        return tokenizer.encode(text, true);
    }

    /** When the checkpoint was written, for /v1/models while the router has not said. */
    long createdFallback() {
        try {
            Path config = dir.resolve("config.json");
            return Files.getLastModifiedTime(Files.exists(config) ? config : dir).toMillis() / 1000;
        } catch (IOException e) {
            return 0;
        }
    }
}
