package io.moeserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.moeserve.runtime.generate.GenerationRequest;
import io.moeserve.runtime.generate.GenerationTrace;
import io.moeserve.runtime.generate.SamplingParams;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/**
 * The runtime against the reference on checkpoints written by the reference's own (Python) writer: config
 * variants our generator does not produce (tied embeddings, sliding windows, linear and dynamic RoPE, v5
 * rope_parameters, DeepSeek-V2-Lite without q LoRA, DeepSeek-V3 with half-split RoPE, MoE++ gating options, eos
 * stops, GLM-4.5 with its rotary fraction in rope_parameters and with YaRN over the rotated part). Each variant is one test.
 */
class ReferenceSuiteTest {
    @TempDir
    static Path suiteRoot;

    @TestFactory
    Stream<DynamicTest> everySuiteVariantMatchesTheReference() throws Exception {
        JsonNode suite = PythonReference.writeSuite(suiteRoot);
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode entry : suite.get("entries")) {
            String name = entry.get("name").asText();
            Path dir = suiteRoot.resolve(entry.get("dir").asText());
            int[] prompt = new int[entry.get("prompt_ids").size()];
            for (int i = 0; i < prompt.length; i++) prompt[i] = entry.get("prompt_ids").get(i).asInt();
            int newTokens = entry.get("max_new_tokens").asInt();
            boolean ignoreEos = entry.get("ignore_eos").asBoolean();
            tests.add(DynamicTest.dynamicTest(name, () -> check(name, dir, prompt, newTokens, ignoreEos)));
        }
        assertTrue(tests.size() >= 20, "the suite lists " + tests.size() + " variants");
        return tests.stream();
    }

    private static void check(String name, Path dir, int[] prompt, int newTokens, boolean ignoreEos) throws Exception {
        try (MoeModel model = MoeModel.load(dir, TinyModels.options(64))) {
            if (prompt.length >= model.config().maxPositionEmbeddings()) {
                // Dynamic NTK past max_position_embeddings: the runtime refuses such contexts, and says why.
                var e = assertThrows(IllegalArgumentException.class, () -> GenerationTrace.run(model,
                        new GenerationRequest(prompt, SamplingParams.GREEDY, newTokens, new int[0])));
                assertTrue(e.getMessage().contains("context limit"), e.getMessage());
                return;
            }
            int[] stops = ignoreEos ? new int[0] : model.config().eosTokenIds().stream().mapToInt(Integer::intValue).toArray();
            GenerationTrace actual = GenerationTrace.run(model, new GenerationRequest(prompt, SamplingParams.GREEDY, newTokens, stops));
            JsonNode expected = ignoreEos ? PythonReference.run(dir, prompt, newTokens) : PythonReference.runStoppingAtEos(dir, prompt, newTokens);
            ReferenceComparisonTest.assertMatches(expected, actual, name, prompt.length);
        }
    }
}
