package io.moeserve.router;

import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.generate.GenerationRequest;
import io.moeserve.runtime.generate.Generator;
import io.moeserve.runtime.generate.SamplingParams;
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.ModelOptions;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.RoutingObserver;
import io.moeserve.runtime.synthetic.SyntheticCheckpointGenerator;
import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** A tiny generated Mixtral-shaped checkpoint for router tests, and the runtime's own output on it. */
public class TinyRouterModel implements QuarkusTestResourceLifecycleManager {
    static final String MODEL_ID = "tiny-router";
    static Path dir;

    static synchronized Path dir() {
        if (dir == null) {
            try {
                dir = Files.createTempDirectory("router-test").resolve(MODEL_ID);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            SyntheticCheckpointGenerator.generate(dir, SyntheticCheckpointGenerator.Spec.tiny(Architecture.MIXTRAL));
        }
        return dir;
    }

    @Override
    public Map<String, String> start() {
        Map<String, String> m = new HashMap<>();
        m.put("moe.model.path", dir().toString());
        m.put("moe.router.batching.max-step-tokens", "16");
        m.put("moe.router.batching.max-sequences", "8");
        m.put("moe.router.batching.max-context", "256");
        return m;
    }

    @Override
    public void stop() {
    }

    /** What the runtime generates in-process, greedy, for one prompt alone. */
    static int[] reference(int[] prompt, int maxNew) {
        Parallel p = Parallel.shared();
        ModelOptions o = new ModelOptions(64, 256, new CpuMatmulKernels(p), p, ExpertSelection.ALL, null);
        try (MoeModel m = MoeModel.load(dir(), o)) {
            KvCache cache = m.newKvCache(1024, 1);
            return new Generator(m, cache).generate(List.of(new GenerationRequest(prompt, SamplingParams.GREEDY, maxNew, new int[0])),
                    (s, t) -> { }, RoutingObserver.NONE, null).getFirst().outputTokens();
        }
    }

    /** The runtime's raw logits at the last prompt position. */
    static float[] promptLogits(int[] prompt) {
        Parallel p = Parallel.shared();
        ModelOptions o = new ModelOptions(64, 256, new CpuMatmulKernels(p), p, ExpertSelection.ALL, null);
        try (MoeModel m = MoeModel.load(dir(), o)) {
            KvCache cache = m.newKvCache(1024, 1);
            float[][] logits = new float[1][];
            new Generator(m, cache).generate(List.of(new GenerationRequest(prompt, SamplingParams.GREEDY, 1, new int[0])),
                    (s, t) -> { }, RoutingObserver.NONE, logits);
            return logits[0];
        }
    }
}
