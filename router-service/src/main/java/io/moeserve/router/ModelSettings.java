package io.moeserve.router;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.nio.file.Path;
import java.util.Optional;

/** Which checkpoint the router serves, and under what name (shared keys of every service, docs/architecture.md). */
@ConfigMapping(prefix = "moe.model")
public interface ModelSettings {
    /** Checkpoint directory: config.json and the safetensors. */
    @WithDefault("models/default")
    Path path();

    /** Served model name; every call must carry it. Defaults to the checkpoint directory's name. */
    Optional<String> id();

    /** The served name. */
    default String resolvedId() {
        return id().orElseGet(() -> path().toAbsolutePath().normalize().getFileName().toString());
    }
}
