package io.moeserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.generate.GenerationRequest;
import io.moeserve.runtime.generate.Generator;
import io.moeserve.runtime.generate.SamplingParams;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The same prompt gives the same bits every time, however far the JIT has got: the first runs are interpreted,
 * later ones C1- and C2-compiled, and any kernel whose result depends on that (an unordered vector reduction, an
 * intrinsic math function that differs from its fallback) makes seeded sampling irreproducible and split experts
 * differ from one process. 40 runs are enough for C2 to compile the hot paths of a tiny model.
 */
class ReproducibilityTest {
    private static final int[] PROMPT = {5, 77, 300, 12, 9, 250, 31, 4, 199, 64, 18};

    @ParameterizedTest
    @EnumSource(Architecture.class)
    void logitsDoNotChangeAsTheJitWarmsUp(Architecture arch) {
        try (MoeModel model = TinyModels.load(arch, 64)) {
            float[] first = promptLogits(model);
            for (int run = 1; run < 40; run++) {
                assertArrayEquals(first, promptLogits(model), arch + ": run " + run + " differs from the first");
            }
        }
    }

    private static float[] promptLogits(MoeModel model) {
        KvCache cache = model.newKvCache(512, 1);
        float[][] logits = new float[1][];
        new Generator(model, cache).generate(List.of(new GenerationRequest(PROMPT, SamplingParams.GREEDY, 1, new int[0])),
                (s, t) -> { }, RoutingObserver.NONE, logits);
        return logits[0];
    }
}
