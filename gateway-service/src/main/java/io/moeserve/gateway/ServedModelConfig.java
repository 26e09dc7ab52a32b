package io.moeserve.gateway;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.util.Optional;

/** The served checkpoint ({@code moe.model.*}, the keys every service shares; docs/architecture.md). */
@ConfigMapping(prefix = "moe.model")
public interface ServedModelConfig {

    /** Checkpoint directory; the gateway reads its tokenizer files (tokenizer.json, tokenizer_config.json). */
    @WithDefault("models/default")
    String path();

    /** The served model name (OpenAI {@code model}); default: the checkpoint directory's name. */
    Optional<String> id();
}
