package io.moeserve.runtime.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.family.ModelFamily;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Reads config.json into a {@link ModelConfig}.
 *
 * <p>The keys every family shares (sizes, norms, token ids) are read here; {@code architectures[0]} names the
 * {@link ModelFamily} that reads the rest, where each family spells the same idea its own way (num_local_experts,
 * num_experts, n_routed_experts; rope_theta with rope_scaling, or transformers v5's rope_parameters) and has its
 * own defaults. The model code only sees the normalised record. Unknown keys are ignored, as transformers does; a
 * known key with an impossible value is rejected with the file and key named.
 */
public final class ConfigParser {
    private static final ObjectMapper JSON = new ObjectMapper();

    private ConfigParser() {}

    /** Reads {@code dir/config.json}, then {@code dir/generation_config.json}'s eos_token_id if present. */
    public static ModelConfig load(Path dir) {
        Path file = dir.resolve("config.json");
        if (!Files.isRegularFile(file)) throw new ConfigException("no config.json in " + dir);
        ModelConfig config = parse(readJson(file), file.toString());
        Path generation = dir.resolve("generation_config.json");
        if (Files.isRegularFile(generation)) {
            ConfigReader g = new ConfigReader(readJson(generation), generation.toString());
            List<Integer> eos = g.intList("eos_token_id");
            if (!eos.isEmpty()) {
                validateTokenIds(g, "eos_token_id", eos, config.vocabSize());
                config = config.withEosTokenIds(eos);
            }
        }
        return config;
    }

    static JsonNode readJson(Path file) {
        try {
            JsonNode node = JSON.readTree(file.toFile());
            if (node == null || !node.isObject()) throw new ConfigException(file + ": not a JSON object");
            return node;
        } catch (IOException e) {
            throw new ConfigException(file + ": cannot read JSON: " + e.getMessage(), e);
        }
    }

    public static ModelConfig parse(JsonNode root, String file) {
        ConfigReader c = new ConfigReader(root, file);
        Architecture arch = architecture(c);
        ModelFamily family = arch.family();
        String act = c.stringOr("hidden_act", "silu");
        if (!act.equals("silu")) throw c.error("hidden_act", "\"" + act + "\" is not supported (only silu)");

        int hidden = c.positiveInt("hidden_size");
        int layers = c.positiveInt("num_hidden_layers");
        int vocab = c.positiveInt("vocab_size");
        int heads = c.positiveInt("num_attention_heads");
        double eps = c.doubleOr("rms_norm_eps", family.defaultRmsNormEps());
        if (!(eps > 0)) throw c.error("rms_norm_eps", "must be positive");
        boolean tie = c.boolOr("tie_word_embeddings", false);
        int maxPos = c.positiveIntOr("max_position_embeddings", 4096);

        MoeConfig moe = family.readMoe(c);
        boolean[] sparse = family.sparseLayers(c, layers);
        int dense = 0;
        for (boolean s : sparse) {
            if (!s) {
                dense = c.positiveInt("intermediate_size");
                break;
            }
        }
        if (c.has("expert_alias") && !c.node("expert_alias").isNull()) moe = readAlias(c, arch, moe, sparse);
        AttentionConfig attention = family.readAttention(c, hidden, heads, layers);
        RopeConfig rope = family.readRope(c, attention, maxPos);

        int bos = c.has("bos_token_id") ? c.requiredInt("bos_token_id") : -1;
        List<Integer> eos = c.intList("eos_token_id");
        validateTokenIds(c, "eos_token_id", eos, vocab);
        if (bos >= vocab || bos < -1) throw c.error("bos_token_id", "must be a token id below vocab_size " + vocab);
        return new ModelConfig(arch, hidden, layers, vocab, (float) eps, tie, maxPos, attention, rope, moe, dense,
                sparse, bos, List.copyOf(eos));
    }

    /**
     * A merged checkpoint's {@code expert_alias} (written by {@code moe merge}): one entry per decoder layer, for a
     * MoE layer the merged expert of each of the gate's outputs, null or [] for a dense layer. Every MoE layer
     * must use the merged ids 0..M−1, each at least once, with the same M (the checkpoint stores M experts a layer).
     */
    private static MoeConfig readAlias(ConfigReader c, Architecture arch, MoeConfig moe, boolean[] sparse) {
        String key = "expert_alias";
        if (arch == Architecture.GPT_OSS || moe.numFfnExperts() != moe.numExperts()) {
            throw c.error(key, "merged experts are not supported for " + arch.hfClassName()
                    + " (fused experts with biases, or gate outputs that are no FFN)");
        }
        JsonNode list = c.node(key);
        if (!list.isArray() || list.size() != sparse.length) throw c.error(key, "must list one entry per decoder layer (" + sparse.length + ")");
        int n = moe.numExperts();
        int[][] alias = new int[sparse.length][];
        int merged = -1;
        for (int l = 0; l < sparse.length; l++) {
            JsonNode entry = list.get(l);
            if (!sparse[l]) {
                if (!entry.isNull() && !(entry.isArray() && entry.isEmpty())) throw c.error(key, "layer " + l + " is dense: its entry must be null");
                continue;
            }
            if (!entry.isArray() || entry.size() != n) throw c.error(key, "layer " + l + " must map each of its " + n + " experts");
            int[] a = new int[n];
            int max = -1;
            for (int e = 0; e < n; e++) {
                JsonNode v = entry.get(e);
                if (!v.canConvertToInt() || !v.isIntegralNumber() || v.intValue() < 0 || v.intValue() >= n) {
                    throw c.error(key, "layer " + l + " expert " + e + ": " + v + " is not a merged expert id below " + n);
                }
                a[e] = v.intValue();
                max = Math.max(max, a[e]);
            }
            boolean[] used = new boolean[max + 1];
            for (int m : a) used[m] = true;
            for (int m = 0; m <= max; m++) if (!used[m]) throw c.error(key, "layer " + l + " never uses merged expert " + m);
            if (merged >= 0 && max + 1 != merged) {
                throw c.error(key, "layer " + l + " has " + (max + 1) + " merged experts, an earlier layer " + merged);
            }
            merged = max + 1;
            alias[l] = a;
        }
        if (merged < 0) return moe;
        return moe.withExpertAlias(alias, merged);
    }

    private static void validateTokenIds(ConfigReader c, String key, List<Integer> ids, int vocab) {
        for (int id : ids) {
            if (id < 0 || id >= vocab) throw c.error(key, "holds " + id + ", which is not a token id below vocab_size " + vocab);
        }
    }

    private static Architecture architecture(ConfigReader c) {
        JsonNode archs = c.node("architectures");
        if (archs == null || !archs.isArray() || archs.isEmpty() || !archs.get(0).isTextual()) {
            throw c.error("architectures", "must be a list naming the model class, e.g. [\"MixtralForCausalLM\"]");
        }
        String name = archs.get(0).asText();
        return Architecture.fromHfClassName(name).orElseThrow(() -> c.error("architectures",
                "names " + name + ", which this runtime does not support (supported: " + Architecture.supportedNames() + ")"));
    }
}
