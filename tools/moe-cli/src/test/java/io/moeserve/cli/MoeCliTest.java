package io.moeserve.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The `moe` command run in-process, as a user runs it. */
class MoeCliTest {
    @TempDir
    Path tmp;

    record Run(int exit, String out, String err) {}

    static Run run(String... args) {
        PrintStream stdout = System.out;
        ByteArrayOutputStream buffer = new ByteArrayOutputStream();
        StringWriter err = new StringWriter();
        try {
            System.setOut(new PrintStream(buffer, true, StandardCharsets.UTF_8));
            CommandLine cl = MoeCli.commandLine();
            cl.setErr(new PrintWriter(err, true));
            int exit = cl.execute(args);
            return new Run(exit, buffer.toString(StandardCharsets.UTF_8), err.toString());
        } finally {
            System.setOut(stdout);
        }
    }

    @Test
    void generatesFromTokenIdsWithOnlyConfigAndSafetensors() throws Exception {
        Path dir = tmp.resolve("olmoe");
        assertEquals(0, run("synth", "--arch", "olmoe", "--size", "tiny", "--dtype", "bf16", "--out", dir.toString()).exit());
        for (String f : new String[] {"tokenizer.json", "tokenizer_config.json", "generation_config.json"}) Files.deleteIfExists(dir.resolve(f));
        Run r = run("generate", dir.toString(), "--prompt-ids", "3,14,15,92,65", "--max-new-tokens", "4", "--ignore-eos", "--json");
        assertEquals(0, r.exit(), r.err());
        JsonNode json = new ObjectMapper().readTree(r.out());
        assertEquals("moe-serve.generation.v2", json.get("format").asText());
        assertEquals("OlmoeForCausalLM", json.get("architecture").asText());
        assertEquals(4, json.get("generated_token_ids").size());
        assertEquals(384, json.get("last_prompt_logits").size());
        assertEquals(3, json.get("gate").size(), "one entry per MoE layer");
        assertEquals(5, json.get("gate").get(0).get("experts").size(), "one row per prompt position");

        Run plain = run("generate", dir.toString(), "--prompt-ids", "3,14,15,92,65", "--max-new-tokens", "4", "--ignore-eos");
        assertEquals(0, plain.exit(), plain.err());
        assertTrue(plain.out().contains(json.get("generated_token_ids").get(0).asText()), plain.out());
    }

    @Test
    void skipThresholdZeroIsTheDefaultOutputAndOutOfRangeIsRefused() throws Exception {
        Path dir = tmp.resolve("mixtral-skip");
        assertEquals(0, run("synth", "--arch", "mixtral", "--size", "tiny", "--dtype", "f32", "--out", dir.toString()).exit());
        String[] base = {"generate", dir.toString(), "--prompt-ids", "3,14,15,92,65,35,89,79", "--max-new-tokens", "3", "--ignore-eos", "--json"};
        Run plain = run(base);
        assertEquals(0, plain.exit(), plain.err());
        Run zero = run(concat(base, "--skip-threshold", "0"));
        assertEquals(0, zero.exit(), zero.err());
        Run all = run(concat(base, "--skip-threshold", "1", "--skip-protect-fraction", "0"));
        assertEquals(0, all.exit(), all.err());
        ObjectMapper json = new ObjectMapper();
        JsonNode logits = json.readTree(plain.out()).get("last_prompt_logits");
        assertEquals(logits, json.readTree(zero.out()).get("last_prompt_logits"), "threshold 0 is bit for bit the default");
        assertNotEquals(logits, json.readTree(all.out()).get("last_prompt_logits"), "threshold 1 keeps only each token's top expert");
        Run bad = run(concat(base, "--skip-threshold", "1.5"));
        assertEquals(1, bad.exit());
        assertTrue(bad.err().contains("skip threshold"), bad.err());
    }

    @Test
    void offloadingChangesNoBitAndReportsItsHitRate() throws Exception {
        Path dir = tmp.resolve("mixtral-offload");
        assertEquals(0, run("synth", "--arch", "mixtral", "--size", "tiny", "--dtype", "bf16", "--out", dir.toString()).exit());
        String[] base = {"generate", dir.toString(), "--prompt-ids", "3,14,15,92,65,35,89,79", "--max-new-tokens", "4", "--ignore-eos", "--json"};
        Run plain = run(base);
        assertEquals(0, plain.exit(), plain.err());
        assertFalse(plain.err().contains("offload"), "off by default: " + plain.err());
        ObjectMapper json = new ObjectMapper();
        for (String budget : new String[] {"0", "20k", "1g"}) {
            Run offloaded = run(concat(base, "--offload-budget", budget));
            assertEquals(0, offloaded.exit(), offloaded.err());
            ObjectNode trace = (ObjectNode) json.readTree(offloaded.out());
            assertTrue(trace.remove("offload").asText().contains("hit rate"), offloaded.out());
            assertEquals(json.readTree(plain.out()), trace, "budget " + budget + ": ids, logits and gate choices");
        }
        Run bad = run(concat(base, "--offload-budget", "lots"));
        assertEquals(1, bad.exit());
        assertTrue(bad.err().contains("--offload-budget"), bad.err());
    }

    @Test
    void aBf16KvCacheRoundsTheLogitsAndABadDtypeIsRefused() throws Exception {
        Path dir = tmp.resolve("mixtral-kv-bf16");
        assertEquals(0, run("synth", "--arch", "mixtral", "--size", "tiny", "--dtype", "f32", "--out", dir.toString()).exit());
        String[] base = {"generate", dir.toString(), "--prompt-ids", "3,14,15,92,65,35,89,79", "--max-new-tokens", "4", "--ignore-eos", "--json"};
        Run exact = run(base);
        Run f32 = run(concat(base, "--kv-cache-dtype", "F32"));
        Run bf16 = run(concat(base, "--kv-cache-dtype", "bf16"));
        assertEquals(0, bf16.exit(), bf16.err());
        ObjectMapper json = new ObjectMapper();
        assertEquals(json.readTree(exact.out()), json.readTree(f32.out()), "f32 is the default");
        assertNotEquals(json.readTree(exact.out()).get("last_prompt_logits"), json.readTree(bf16.out()).get("last_prompt_logits"),
                "the logits read rounded keys and values");
        Run bad = run(concat(base, "--kv-cache-dtype", "f8"));
        assertEquals(1, bad.exit());
        assertTrue(bad.err().contains("f32, bf16"), bad.err());
    }

    @Test
    void prunesByRoutingStatisticsOrCalibrationTextAndThePrunedModelRuns() throws Exception {
        Path dir = tmp.resolve("olmoe-prune");
        assertEquals(0, run("synth", "--arch", "olmoe", "--size", "tiny", "--dtype", "f32", "--out", dir.toString()).exit());
        JsonNode config = new ObjectMapper().readTree(dir.resolve("config.json").toFile());
        int experts = config.get("num_experts").asInt();
        int layers = config.get("num_hidden_layers").asInt();
        Path stats = rareExpertStats(tmp.resolve("stats.json"), layers, experts);
        Path pruned = tmp.resolve("olmoe-pruned");
        double keep = (experts - 2) / (double) experts;
        Run r = run("prune", dir.toString(), "--out", pruned.toString(), "--keep-fraction", Double.toString(keep), "--stats", stats.toString());
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("layer 0: pruned experts [2, 5]"), r.out());
        assertEquals(experts - 2, new ObjectMapper().readTree(pruned.resolve("config.json").toFile()).get("num_experts").asInt());
        Run gen = run("generate", pruned.toString(), "--prompt-ids", "3,14,15,92,65", "--max-new-tokens", "3", "--ignore-eos");
        assertEquals(0, gen.exit(), gen.err());
        Run masked = run("generate", dir.toString(), "--prompt-ids", "3,14,15,92,65", "--max-new-tokens", "3", "--ignore-eos",
                "--prune-experts", "*:2,5");
        assertEquals(0, masked.exit(), masked.err());

        Path text = Files.writeString(tmp.resolve("calibration.txt"), "The quick brown fox jumps over the lazy dog. ".repeat(20));
        Run calibrated = run("prune", dir.toString(), "--out", tmp.resolve("olmoe-calibrated").toString(), "--calibration", text.toString());
        assertEquals(0, calibrated.exit(), calibrated.err());
        assertTrue(calibrated.out().contains("experts per MoE layer"), calibrated.out());
        Run both = run("prune", dir.toString(), "--out", tmp.resolve("x").toString());
        assertEquals(1, both.exit());
        assertTrue(both.err().contains("exactly one of --stats and --calibration"), both.err());
    }

    @Test
    void mergesByRoutingStatisticsOrCalibrationTextAndTheMergedModelRuns() throws Exception {
        Path dir = tmp.resolve("mixtral-merge");
        assertEquals(0, run("synth", "--arch", "mixtral", "--size", "tiny", "--dtype", "bf16", "--out", dir.toString()).exit());
        JsonNode config = new ObjectMapper().readTree(dir.resolve("config.json").toFile());
        int experts = config.get("num_local_experts").asInt();
        int layers = config.get("num_hidden_layers").asInt();
        Path stats = rareExpertStats(tmp.resolve("merge-stats.json"), layers, experts);
        Path merged = tmp.resolve("mixtral-merged");
        Run r = run("merge", dir.toString(), "--out", merged.toString(), "--experts-per-layer", Integer.toString(experts - 2),
                "--stats", stats.toString());
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("layer 0: expert_alias"), r.out());
        JsonNode after = new ObjectMapper().readTree(merged.resolve("config.json").toFile());
        assertEquals(experts, after.get("num_local_experts").asInt(), "the gate still has every expert");
        JsonNode alias = after.get("expert_alias").get(0);
        assertEquals(experts, alias.size());
        // Experts 2 and 5 carry the least routing: they join others, so ids 0..experts-3 remain, each used.
        for (int e = 0; e < experts; e++) assertTrue(alias.get(e).asInt() < experts - 2, alias.toString());
        assertEquals(alias.get(1).asInt() + 1, alias.get(3).asInt(), "leaders keep their order: " + alias);
        Run gen = run("generate", merged.toString(), "--prompt-ids", "3,14,15,92,65", "--max-new-tokens", "3", "--ignore-eos");
        assertEquals(0, gen.exit(), gen.err());

        Path text = Files.writeString(tmp.resolve("merge-calibration.txt"), "The quick brown fox jumps over the lazy dog. ".repeat(20));
        Run calibrated = run("merge", dir.toString(), "--out", tmp.resolve("mixtral-calibrated").toString(), "--calibration", text.toString(),
                "--merge-fraction", "0.5", "--no-align");
        assertEquals(0, calibrated.exit(), calibrated.err());
        assertTrue(calibrated.out().contains("with " + Math.round(experts * 0.5) + " merged experts per MoE layer"), calibrated.out());
        Run neither = run("merge", dir.toString(), "--out", tmp.resolve("x").toString());
        assertEquals(1, neither.exit());
        assertTrue(neither.err().contains("exactly one of --stats and --calibration"), neither.err());
        Run both = run("merge", dir.toString(), "--out", tmp.resolve("y").toString(), "--stats", stats.toString(),
                "--experts-per-layer", "4", "--merge-fraction", "0.5");
        assertEquals(1, both.exit());
        assertTrue(both.err().contains("not both"), both.err());
    }

    private static String[] concat(String[] a, String... b) {
        String[] all = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }

    @Test
    void quantizeMixedPlansWidthsFromCalibrationTextOrStatisticsAndTheCheckpointRuns() throws Exception {
        Path dir = tmp.resolve("mixtral");
        assertEquals(0, run("synth", "--arch", "mixtral", "--size", "tiny", "--dtype", "bf16", "--out", dir.toString()).exit());
        Path text = tmp.resolve("calibration.txt");
        Files.writeString(text, "The quick brown fox jumps over the lazy dog. ".repeat(20));
        Path mixed = tmp.resolve("mixed");
        Run r = run("quantize", dir.toString(), "--experts", "mixed", "--average-bits", "4", "--calibration", text.toString(),
                "--group-size", "32", "--calibration-window", "64", "--out", mixed.toString());
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("measured routing on"), r.out());
        assertTrue(r.out().contains("average bits per expert weight"), r.out());
        JsonNode groups = new ObjectMapper().readTree(mixed.resolve("config.json").toFile()).get("quantization_config").get("config_groups");
        assertTrue(groups.fieldNames().next().startsWith("group_experts_int"), groups.toString());
        Run g = run("generate", mixed.toString(), "--prompt-ids", "3,14,15,92,65", "--max-new-tokens", "2", "--ignore-eos");
        assertEquals(0, g.exit(), g.err());

        Path stats = tmp.resolve("stats.json");
        Files.writeString(stats, "{\"layers\": [{\"layer\": 0, \"experts\": [{\"expert\": 3, \"count\": 50, \"mean_weight\": 0.6}]}]}");
        Run random = run("quantize", dir.toString(), "--experts", "mixed", "--average-bits", "3.5", "--stats", stats.toString(),
                "--budget", "codes", "--assignment", "random", "--seed", "4", "--out", tmp.resolve("random").toString());
        assertEquals(0, random.exit(), random.err());
        assertTrue(random.out().contains("experts per width (random)"), random.out());
        Run noImportance = run("quantize", dir.toString(), "--experts", "mixed", "--average-bits", "3", "--out",
                tmp.resolve("none").toString());
        assertTrue(noImportance.exit() != 0 && noImportance.err().contains("--stats FILE or --calibration FILE"), noImportance.err());
    }

    @Test
    void sampledGenerationWithASeedRepeats() {
        Path dir = tmp.resolve("mixtral");
        run("synth", "--arch", "mixtral", "--size", "tiny", "--dtype", "f32", "--out", dir.toString());
        String[] args = {"generate", dir.toString(), "--prompt-ids", "1,2,3", "--max-new-tokens", "10", "--temperature", "0.9",
                "--top-p", "0.9", "--top-k", "50", "--seed", "5", "--ignore-eos"};
        Run a = run(args);
        Run b = run(args);
        assertEquals(0, a.exit(), a.err());
        assertEquals(a.out(), b.out());
    }

    @Test
    void inspectDescribesTheCheckpoint() {
        Path dir = tmp.resolve("ds3");
        run("synth", "--arch", "deepseek-v3", "--size", "tiny", "--dtype", "bf16", "--out", dir.toString());
        Run r = run("inspect", dir.toString());
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("DeepseekV3ForCausalLM") && r.out().contains("multi-head latent")
                && r.out().contains("BF16") && r.out().contains("sigmoid with selection bias, top 2 of 4 groups"), r.out());
    }

    @Test
    void glmSynthesisesAndInspectsByItsShortName() {
        Path dir = tmp.resolve("glm");
        assertEquals(0, run("synth", "--arch", "glm", "--size", "tiny", "--dtype", "bf16", "--out", dir.toString()).exit());
        Run r = run("inspect", dir.toString());
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("Glm4MoeForCausalLM") && r.out().contains("rotary         12 of each q/k head's 24 elements, half-split")
                && r.out().contains("top 2 of 4 groups") && r.out().contains("shared expert  width 96"), r.out());
    }

    @Test
    void badInputIsACleanErrorNotAStackTrace() {
        Path dir = tmp.resolve("q3");
        run("synth", "--arch", "qwen3-moe", "--size", "tiny", "--dtype", "f32", "--out", dir.toString());
        Run outside = run("generate", dir.toString(), "--prompt-ids", "1,99999", "--max-new-tokens", "2");
        assertEquals(1, outside.exit());
        assertTrue(outside.err().startsWith("error: ") && outside.err().contains("99999"), outside.err());
        Run missing = run("inspect", tmp.resolve("nowhere").toString());
        assertEquals(1, missing.exit());
        assertTrue(missing.err().contains("config.json"), missing.err());
        Run badArch = run("synth", "--arch", "llama", "--out", tmp.resolve("x").toString());
        assertEquals(1, badArch.exit());
        assertTrue(badArch.err().contains("unknown architecture llama"), badArch.err());
        Run badTemp = run("generate", dir.toString(), "--prompt-ids", "1", "--temperature", "-1");
        assertEquals(1, badTemp.exit());
        assertTrue(badTemp.err().contains("temperature"), badTemp.err());
    }

    /** Routing statistics in which experts 2 and 5 of every layer are routed once and every other expert 100+ times. */
    private static Path rareExpertStats(Path file, int layers, int experts) throws Exception {
        StringBuilder tokens = new StringBuilder("{\"tokens\":[");
        for (int l = 0; l < layers; l++) {
            tokens.append(l == 0 ? "[" : ",[");
            for (int e = 0; e < experts; e++) tokens.append(e == 0 ? "" : ",").append(e == 2 || e == 5 ? 1 : 100 + e);
            tokens.append(']');
        }
        return Files.writeString(file, tokens.append("]}").toString());
    }
}
