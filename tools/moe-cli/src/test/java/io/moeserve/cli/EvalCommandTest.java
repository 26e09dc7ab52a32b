package io.moeserve.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * {@code moe eval} on the committed evaluation model (tools/eval-model, trained on Python documentation text) over
 * the first 2,048 tokens of its held-out text: no training, no torch.
 */
class EvalCommandTest {
    static final Path MODEL = Path.of("../eval-model/checkpoint");
    static final Path HELD_OUT = Path.of("../eval-model/heldout.txt");

    @TempDir
    Path tmp;

    @Test
    void theTrainedModelBeatsTheUnigramBaselineAndMatchesItself() throws Exception {
        Path stats = tmp.resolve("routing.json");
        MoeCliTest.Run r = MoeCliTest.run("eval", MODEL.toString(), "--text", HELD_OUT.toString(), "--max-tokens", "2048",
                "--baseline", MODEL.toString(), "--routing-stats", stats.toString(), "--json", "--threads", "2");
        assertEquals(0, r.exit(), r.err());
        JsonNode json = new ObjectMapper().readTree(r.out());
        assertEquals(2047, json.get("tokens").asLong(), "every token but the first is predicted once");
        double perplexity = json.get("perplexity").asDouble();
        double unigram = json.get("unigram_perplexity").asDouble();
        // Measured: 93.6 against a unigram 653.3 (tools/eval-model/README.md); a broken forward pass lands near
        // or above the unigram figure, a wrong tokenizer changes the token count.
        assertTrue(perplexity < 115, "perplexity " + perplexity);
        assertTrue(perplexity < 0.25 * unigram, perplexity + " against unigram " + unigram);
        assertTrue(unigram > 500 && unigram < 800, "unigram " + unigram);
        assertEquals(0, json.get("kl_divergence").asDouble(), 1e-12);
        assertEquals(1, json.get("top1_agreement").asDouble());
        assertEquals(2.0, json.get("expert_pairs_per_token").asDouble(), "top-2, nothing skipped");
        assertEquals(0.0, json.get("skipped_pair_share").asDouble());

        JsonNode routing = new ObjectMapper().readTree(stats.toFile());
        assertEquals(2047, routing.get("tokens").asLong());
        assertEquals(4, routing.get("layers").size());
        for (JsonNode layer : routing.get("layers")) {
            long routed = 0;
            for (JsonNode expert : layer.get("experts")) {
                routed += expert.get("count").asLong();
                double weight = expert.get("mean_weight").asDouble();
                assertTrue(weight > 0 && weight <= 1, "mean gate weight " + weight);
            }
            assertEquals(2047 * 2, routed, "top-2: two experts per token in layer " + layer.get("layer"));
        }
    }

    @Test
    void aSwitchAppliesToTheCandidateOnlyAndItsSavingsAreCounted() {
        MoeCliTest.Run r = MoeCliTest.run("eval", MODEL.toString(), "--text", HELD_OUT.toString(), "--max-tokens", "300",
                "--window", "100", "--baseline", MODEL.toString(), "--skip-threshold", "0.6", "--json");
        assertEquals(0, r.exit(), r.err());
        JsonNode json = readJson(r.out());
        double share = json.get("skipped_pair_share").asDouble();
        assertTrue(share > 0 && share < 0.5, "skipped share " + share);
        assertEquals(2 * (1 - share), json.get("expert_pairs_per_token").asDouble(), 1e-9);
        // The baseline runs without the switch: the candidate's skipped experts show as divergence.
        assertTrue(json.get("kl_divergence").asDouble() > 0, "KL " + json.get("kl_divergence"));
        assertTrue(json.get("top1_agreement").asDouble() < 1);
    }

    private static JsonNode readJson(String text) {
        try {
            return new ObjectMapper().readTree(text);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Test
    void theBaselineKeepsTheCandidatesThreadsContextAndStepSize() {
        EvalCommand eval = new EvalCommand();
        eval.runtime = CommandLine.populateCommand(new RuntimeOptions(), "--threads", "3", "--max-context", "512",
                "--step-tokens", "64");
        RuntimeOptions base = eval.baselineOptions();
        assertEquals(3, base.threads);
        assertEquals(512, base.maxContext);
        assertEquals(64, base.stepTokens);
    }

    @Test
    void plainOutputNamesTheFigures() {
        MoeCliTest.Run r = MoeCliTest.run("eval", MODEL.toString(), "--text", HELD_OUT.toString(), "--max-tokens", "300",
                "--window", "100", "--threads", "2");
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("over 299 predicted tokens"), r.out());
        assertTrue(r.out().contains("unigram baseline perplexity"), r.out());
    }
}
