package io.moeserve.expert;

import io.moeserve.runtime.model.Architecture;
import io.moeserve.runtime.synthetic.SyntheticCheckpointGenerator;
import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/** Generates a tiny Mixtral-shaped checkpoint (real safetensors layout) and points the pod at it, hosting experts 0-3. */
public class TinyCheckpointResource implements QuarkusTestResourceLifecycleManager {
    static final String HOSTS = "*:0-3";
    static final String MODEL_ID = "tiny-mixtral";
    static final String GROUP = "g-low";
    static Path dir;

    @Override
    public Map<String, String> start() {
        try {
            dir = Files.createTempDirectory("expert-service-test").resolve(MODEL_ID);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        SyntheticCheckpointGenerator.generate(dir, SyntheticCheckpointGenerator.Spec.tiny(Architecture.MIXTRAL));
        return Map.of("moe.model.path", dir.toString(), "moe.expert.hosts", HOSTS, "moe.expert.group", GROUP,
                "moe.expert.routing-table-version", "7", "moe.expert.max-batch-tokens", "64");
    }

    @Override
    public void stop() {
    }
}
