package io.moeserve.expert;

import io.moeserve.runtime.family.Architecture;
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
        // Calls of up to 2 tokens are computed on the gRPC thread when the pod is idle; the tests' calls are larger, so
        // they reach the compute thread, whose batching behind a long call is what one test checks. (A single event
        // loop that computes each call as it reads it never has a queue to batch; ExpertComputerTest covers that path.)
        return Map.of("moe.model.path", dir.toString(), "moe.expert.hosts", HOSTS, "moe.expert.group", GROUP,
                "moe.expert.routing-table-version", "7", "moe.expert.max-batch-tokens", "64", "moe.expert.inline-max-tokens", "2");
    }

    @Override
    public void stop() {
    }
}
