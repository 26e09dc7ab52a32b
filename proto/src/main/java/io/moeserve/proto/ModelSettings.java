package io.moeserve.proto;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.nio.file.Path;
import java.util.Optional;

/**
 * Which checkpoint a service serves, and under what name: the {@code moe.model.*} keys every service shares
 * (docs/architecture.md). The name is the OpenAI {@code model} at the gateway and the model id every gRPC message
 * between the services carries, so all three resolve it here, the same way.
 */
@ConfigMapping(prefix = "moe.model")
public interface ModelSettings {
    /** Checkpoint directory: config.json and the safetensors (the gateway reads its tokenizer files). */
    @WithDefault("models/default")
    Path path();

    /** Served model name; every call must carry it. Defaults to the checkpoint directory's name. */
    Optional<String> id();

    /** The checkpoint directory, absolute and normalised. */
    default Path directory() {
        return path().toAbsolutePath().normalize();
    }

    /** The served name: {@link #id()} unless blank, else the checkpoint directory's name. */
    default String resolvedId() {
        return id().filter(s -> !s.isBlank()).orElseGet(() -> directory().getFileName().toString());
    }
}
