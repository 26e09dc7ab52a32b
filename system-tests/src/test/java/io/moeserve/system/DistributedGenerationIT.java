package io.moeserve.system;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.family.Architecture;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Router and two expert pods as separate processes, each pod hosting half of the experts: the greedy output is
 * the runtime's in-process output for the same checkpoint and prompt, token for token.
 */
class DistributedGenerationIT {
    private static final int[] PROMPT = {11, 250, 3, 1999, 42, 7, 300, 12, 5, 81, 2048, 9};

    @ParameterizedTest
    @EnumSource(value = Architecture.class, names = {"MIXTRAL", "QWEN3_MOE", "MOE_PLUS_PLUS", "GPT_OSS", "GLM4_MOE"})
    void splittingExpertsOverPodsDoesNotChangeTheOutput(Architecture arch) {
        check(arch, Models.small(arch));
    }

    /** gpt-oss as the hub ships it: the pods compute its MXFP4 experts where they are mapped. */
    @Test
    void podsServingMxfp4ExpertsComputeWhatOneProcessComputes() {
        check(Architecture.GPT_OSS, Models.smallMxfp4());
    }

    private static void check(Architecture arch, Path model) {
        int experts = ConfigParser.load(model).moe().numFfnExperts();
        int[] expected = Models.inProcess(model, PROMPT, 24);
        try (Deployment d = new Deployment(model, model.getFileName().toString())) {
            d.startExpert("low", "*:0-" + (experts / 2 - 1));
            d.startExpert("high", "*:" + (experts / 2) + "-" + (experts - 1));
            d.startRouter(Map.of());
            d.awaitReady();
            assertArrayEquals(expected, d.generate(PROMPT, 24), arch + ": router + two pods differ from one process");
            String metrics = d.experts.get("high").getFirst().get("/q/metrics");
            assertTrue(metrics.contains("moe_expert_pod_tokens_total{group=\"high\"}"), "the pods did the expert work");
        }
    }
}
