package io.moeserve.runtime.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Reads config.json into a {@link ModelConfig}.
 *
 * <p>Each family spells the same idea differently (num_local_experts, num_experts, n_routed_experts; rope_theta
 * with rope_scaling, or transformers v5's rope_parameters). This class is the one place that knows those spellings
 * and HF's defaults; the model code only sees the normalised record. Unknown keys are ignored, as transformers does;
 * a known key with an impossible value is rejected with the file and key named.
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
            JsonConfig g = new JsonConfig(readJson(generation), generation.toString());
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
        JsonConfig c = new JsonConfig(root, file);
        Architecture arch = architecture(c);
        String act = c.stringOr("hidden_act", "silu");
        if (!act.equals("silu")) throw c.error("hidden_act", "\"" + act + "\" is not supported (only silu)");

        int hidden = c.positiveInt("hidden_size");
        int layers = c.positiveInt("num_hidden_layers");
        int vocab = c.positiveInt("vocab_size");
        int heads = c.positiveInt("num_attention_heads");
        double eps = c.doubleOr("rms_norm_eps", arch == Architecture.MIXTRAL || arch == Architecture.OLMOE ? 1e-5 : 1e-6);
        if (!(eps > 0)) throw c.error("rms_norm_eps", "must be positive");
        boolean tie = c.boolOr("tie_word_embeddings", false);
        int maxPos = c.positiveIntOr("max_position_embeddings", 4096);

        MoeConfig moe = moe(c, arch, layers);
        boolean[] sparse = sparseLayers(c, arch, layers);
        int dense = 0;
        for (boolean s : sparse) {
            if (!s) {
                dense = c.positiveInt("intermediate_size");
                break;
            }
        }
        AttentionConfig attention = attention(c, arch, hidden, heads, layers);
        RopeConfig rope = rope(c, arch, attention, maxPos);
        if (attention.kind() == AttentionConfig.Kind.MULTI_HEAD_LATENT) {
            attention = withDeepseekSoftmaxScale(c, attention);
        }

        int bos = c.has("bos_token_id") ? c.requiredInt("bos_token_id") : -1;
        List<Integer> eos = c.intList("eos_token_id");
        validateTokenIds(c, "eos_token_id", eos, vocab);
        if (bos >= vocab || bos < -1) throw c.error("bos_token_id", "must be a token id below vocab_size " + vocab);
        return new ModelConfig(arch, hidden, layers, vocab, (float) eps, tie, maxPos, attention, rope, moe, dense,
                sparse, bos, List.copyOf(eos));
    }

    private static void validateTokenIds(JsonConfig c, String key, List<Integer> ids, int vocab) {
        for (int id : ids) {
            if (id < 0 || id >= vocab) throw c.error(key, "holds " + id + ", which is not a token id below vocab_size " + vocab);
        }
    }

    private static Architecture architecture(JsonConfig c) {
        JsonNode archs = c.node("architectures");
        if (archs == null || !archs.isArray() || archs.isEmpty() || !archs.get(0).isTextual()) {
            throw c.error("architectures", "must be a list naming the model class, e.g. [\"MixtralForCausalLM\"]");
        }
        String name = archs.get(0).asText();
        return Architecture.fromHfClassName(name).orElseThrow(() -> c.error("architectures",
                "names " + name + ", which this runtime does not support (supported: " + Architecture.supportedNames() + ")"));
    }

    // ---------------------------------------------------------------- MoE block

    private static MoeConfig moe(JsonConfig c, Architecture arch, int layers) {
        return switch (arch) {
            case MIXTRAL -> {
                int e = c.has("num_local_experts") ? c.positiveInt("num_local_experts") : c.positiveIntOr("num_experts", 8);
                int k = topK(c, "num_experts_per_tok", 2, e);
                yield new MoeConfig(e, e, k, c.positiveInt("intermediate_size"), MoeConfig.RouterKind.SOFTMAX_TOPK,
                        true, 1f, 1, 1, 0, false, null);
            }
            case QWEN2_MOE, QWEN3_MOE -> {
                int e = c.positiveInt("num_experts");
                int k = topK(c, "num_experts_per_tok", arch == Architecture.QWEN2_MOE ? 4 : 8, e);
                int shared = arch == Architecture.QWEN2_MOE ? c.positiveInt("shared_expert_intermediate_size") : 0;
                yield new MoeConfig(e, e, k, c.positiveInt("moe_intermediate_size"), MoeConfig.RouterKind.SOFTMAX_TOPK,
                        c.boolOr("norm_topk_prob", false), 1f, 1, 1, shared, arch == Architecture.QWEN2_MOE, null);
            }
            case OLMOE -> {
                int e = c.positiveIntOr("num_experts", 64);
                int k = topK(c, "num_experts_per_tok", 8, e);
                yield new MoeConfig(e, e, k, c.positiveInt("intermediate_size"), MoeConfig.RouterKind.SOFTMAX_TOPK,
                        c.boolOr("norm_topk_prob", false), 1f, 1, 1, 0, false, null);
            }
            case DEEPSEEK_V2, DEEPSEEK_V3 -> deepseekMoe(c, arch);
            case MOE_PLUS_PLUS -> moePlusPlus(c);
        };
    }

    private static int topK(JsonConfig c, String key, int fallback, int experts) {
        int k = c.positiveIntOr(key, fallback);
        if (k > experts) throw c.error(key, "is " + k + " but there are only " + experts + " experts");
        return k;
    }

    private static MoeConfig deepseekMoe(JsonConfig c, Architecture arch) {
        boolean v3 = arch == Architecture.DEEPSEEK_V3;
        int e = c.positiveInt("n_routed_experts");
        int k = topK(c, "num_experts_per_tok", 8, e);
        int sharedCount = c.intOr("n_shared_experts", v3 ? 1 : 2);
        if (sharedCount < 0) throw c.error("n_shared_experts", "must not be negative");
        int expertWidth = c.positiveInt("moe_intermediate_size");
        String scoring = c.stringOr("scoring_func", v3 ? "sigmoid" : "softmax");
        String method = c.stringOr("topk_method", v3 ? "noaux_tc" : "greedy");
        MoeConfig.RouterKind router;
        if (v3) {
            if (!scoring.equals("sigmoid")) throw c.error("scoring_func", "\"" + scoring + "\" is not supported for DeepSeek-V3 (sigmoid)");
            if (!method.equals("noaux_tc")) throw c.error("topk_method", "\"" + method + "\" is not supported for DeepSeek-V3 (noaux_tc)");
            router = MoeConfig.RouterKind.SIGMOID_GROUP_LIMITED;
        } else {
            if (!scoring.equals("softmax")) throw c.error("scoring_func", "\"" + scoring + "\" is not supported for DeepSeek-V2 (softmax)");
            router = switch (method) {
                case "greedy" -> MoeConfig.RouterKind.SOFTMAX_TOPK;
                case "group_limited_greedy" -> MoeConfig.RouterKind.SOFTMAX_GROUP_LIMITED;
                default -> throw c.error("topk_method", "\"" + method + "\" is not supported (greedy, group_limited_greedy)");
            };
        }
        boolean grouped = router != MoeConfig.RouterKind.SOFTMAX_TOPK;
        int groups = grouped ? c.positiveIntOr("n_group", 1) : 1;
        int topkGroups = grouped ? c.positiveIntOr("topk_group", 1) : 1;
        if (e % groups != 0) throw c.error("n_group", groups + " does not divide n_routed_experts " + e);
        if (topkGroups > groups) throw c.error("topk_group", topkGroups + " exceeds n_group " + groups);
        if (k > topkGroups * (e / groups)) throw c.error("num_experts_per_tok", k + " exceeds the experts in topk_group groups");
        if (v3 && (e / groups) < 2) throw c.error("n_group", "leaves fewer than 2 experts per group (group score is a top-2 sum)");
        double scale = c.doubleOr("routed_scaling_factor", 1.0);
        if (!(scale > 0)) throw c.error("routed_scaling_factor", "must be positive");
        // HF's DeepSeek-V2 always scales and never renormalises; V3 renormalises when norm_topk_prob is set.
        boolean norm = v3 && c.boolOr("norm_topk_prob", true);
        return new MoeConfig(e, e, k, expertWidth, router, norm, (float) scale, groups, topkGroups,
                sharedCount * expertWidth, false, null);
    }

    private static MoeConfig moePlusPlus(JsonConfig c) {
        JsonNode n = c.node("num_experts");
        int e;
        if (n == null) e = 32;
        else if (n.isArray() && !n.isEmpty() && n.get(0).isIntegralNumber()) e = n.get(0).asInt();
        else if (n.isIntegralNumber()) e = n.asInt();
        else throw c.error("num_experts", "must be a list of integers such as [16], got " + n);
        if (e < 5) throw c.error("num_experts", e + " leaves no FFN expert beside the four zero-computation experts");
        int interval = c.intOr("moe_expert_interval", 1);
        if (interval != 1) {
            // The released modeling code passes gate_residual to its dense MLP, which does not accept it.
            throw c.error("moe_expert_interval", "is " + interval + "; the released MoE++ code runs only with 1");
        }
        boolean mixtral = c.boolOr("moe_use_mixtral_gating", false);
        boolean noMul = c.boolOr("moe_feature_no_mul_topk", false);
        double std = c.doubleOr("moe_gate_norm_std", 1.0);
        if (!(std > 0)) throw c.error("moe_gate_norm_std", "must be positive");
        var pp = new MoeConfig.MoePlusPlus(c.boolOr("moe_2layer_gate", true), mixtral,
                c.boolOr("moe_use_logits_norm", false), (float) std, (mixtral || noMul) ? 1f : 2f);
        return new MoeConfig(e, e - 4, 2, c.positiveInt("intermediate_size"), MoeConfig.RouterKind.MOE_PLUS_PLUS,
                true, 1f, 1, 1, 0, false, pp);
    }

    private static boolean[] sparseLayers(JsonConfig c, Architecture arch, int layers) {
        boolean[] sparse = new boolean[layers];
        switch (arch) {
            case MIXTRAL, OLMOE, MOE_PLUS_PLUS -> java.util.Arrays.fill(sparse, true);
            case QWEN2_MOE, QWEN3_MOE -> {
                int step = c.positiveIntOr("decoder_sparse_step", 1);
                Set<Integer> mlpOnly = new HashSet<>();
                JsonNode list = c.node("mlp_only_layers");
                if (list != null) {
                    if (!list.isArray()) throw c.error("mlp_only_layers", "must be a list of layer indices");
                    for (JsonNode x : list) {
                        if (!x.isIntegralNumber() || x.asInt() < 0 || x.asInt() >= layers) {
                            throw c.error("mlp_only_layers", "holds " + x + ", not a layer index below " + layers);
                        }
                        mlpOnly.add(x.asInt());
                    }
                }
                for (int i = 0; i < layers; i++) sparse[i] = !mlpOnly.contains(i) && (i + 1) % step == 0;
            }
            case DEEPSEEK_V2, DEEPSEEK_V3 -> {
                int firstDense = c.intOr("first_k_dense_replace", 0);
                if (firstDense < 0 || firstDense > layers) throw c.error("first_k_dense_replace", "must be within [0, " + layers + "]");
                int freq = c.positiveIntOr("moe_layer_freq", 1);
                for (int i = 0; i < layers; i++) sparse[i] = i >= firstDense && i % freq == 0;
            }
        }
        return sparse;
    }

    // ---------------------------------------------------------------- attention

    private static AttentionConfig attention(JsonConfig c, Architecture arch, int hidden, int heads, int layers) {
        int[] window = slidingWindows(c, arch, layers);
        if (arch == Architecture.DEEPSEEK_V2 || arch == Architecture.DEEPSEEK_V3) {
            int qLora = c.has("q_lora_rank") ? c.positiveInt("q_lora_rank") : 0;
            var mla = new AttentionConfig.MlaDims(qLora, c.positiveInt("kv_lora_rank"), c.positiveInt("qk_nope_head_dim"),
                    c.positiveInt("qk_rope_head_dim"), c.positiveInt("v_head_dim"), c.boolOr("attention_bias", false));
            if (mla.qkRopeHeadDim() % 2 != 0) throw c.error("qk_rope_head_dim", "must be even");
            float scale = (float) Math.pow(mla.qkHeadDim(), -0.5);
            return new AttentionConfig(AttentionConfig.Kind.MULTI_HEAD_LATENT, heads, heads, mla.qkHeadDim(), false,
                    mla.projectionBias(), AttentionConfig.QkNorm.NONE, Float.NaN, window, mla, scale);
        }
        int kvHeads = c.positiveIntOr("num_key_value_heads", heads);
        if (heads % kvHeads != 0) throw c.error("num_key_value_heads", kvHeads + " does not divide num_attention_heads " + heads);
        int headDim;
        if (c.has("head_dim") && arch != Architecture.MOE_PLUS_PLUS) {
            headDim = c.positiveInt("head_dim");
        } else {
            if (hidden % heads != 0) throw c.error("num_attention_heads", heads + " does not divide hidden_size " + hidden);
            headDim = hidden / heads;
        }
        if (headDim % 2 != 0) throw c.error("head_dim", "must be even for rotary embeddings, got " + headDim);
        boolean qkvBias;
        boolean oBias;
        AttentionConfig.QkNorm norm = AttentionConfig.QkNorm.NONE;
        float clip = Float.NaN;
        switch (arch) {
            case QWEN2_MOE -> {
                qkvBias = c.boolOr("qkv_bias", true);
                oBias = false;
            }
            case QWEN3_MOE -> {
                qkvBias = oBias = c.boolOr("attention_bias", false);
                norm = AttentionConfig.QkNorm.PER_HEAD;
            }
            case OLMOE -> {
                qkvBias = oBias = c.boolOr("attention_bias", false);
                norm = AttentionConfig.QkNorm.WHOLE_PROJECTION;
                if (c.has("clip_qkv")) {
                    clip = (float) c.doubleOr("clip_qkv", 0);
                    if (!(clip > 0)) throw c.error("clip_qkv", "must be positive or null");
                }
            }
            default -> qkvBias = oBias = false;
        }
        return new AttentionConfig(AttentionConfig.Kind.GROUPED_QUERY, heads, kvHeads, headDim, qkvBias, oBias, norm,
                clip, window, null, (float) Math.pow(headDim, -0.5));
    }

    private static int[] slidingWindows(JsonConfig c, Architecture arch, int layers) {
        int[] window = new int[layers];
        switch (arch) {
            case MIXTRAL -> {
                if (c.has("sliding_window")) java.util.Arrays.fill(window, c.positiveInt("sliding_window"));
            }
            case QWEN2_MOE, QWEN3_MOE -> {
                if (c.boolOr("use_sliding_window", false)) {
                    int w = c.positiveInt("sliding_window");
                    JsonNode types = c.node("layer_types");
                    if (types != null) {
                        if (!types.isArray() || types.size() != layers) throw c.error("layer_types", "must list one type per layer");
                        for (int i = 0; i < layers; i++) {
                            String t = types.get(i).asText();
                            if (t.equals("sliding_attention")) window[i] = w;
                            else if (!t.equals("full_attention")) throw c.error("layer_types", "holds unknown type " + t);
                        }
                    } else if (arch == Architecture.QWEN3_MOE) {
                        java.util.Arrays.fill(window, w); // Qwen3-MoE has no max_window_layers: every layer slides
                    } else {
                        int maxWindowLayers = c.intOr("max_window_layers", layers);
                        for (int i = maxWindowLayers; i < layers; i++) window[i] = w;
                    }
                }
            }
            default -> { }
        }
        return window;
    }

    // ---------------------------------------------------------------- rotary embedding

    private static RopeConfig rope(JsonConfig c, Architecture arch, AttentionConfig attention, int maxPos) {
        boolean deepseek = attention.kind() == AttentionConfig.Kind.MULTI_HEAD_LATENT;
        int dim = deepseek ? attention.mla().qkRopeHeadDim() : attention.headDim();
        boolean interleaved = arch == Architecture.DEEPSEEK_V2
                || (arch == Architecture.DEEPSEEK_V3 && c.boolOr("rope_interleave", true));
        RopeParams p = ropeParams(c, arch);
        if (!(p.theta > 0)) throw c.error(p.keyPrefix + "rope_theta", "must be positive");
        return switch (p.type) {
            // Dynamic NTK only changes frequencies beyond max_position_embeddings, which this runtime never runs.
            case "default", "dynamic" -> new RopeConfig(dim, interleaved, RopeConfig.defaultInvFreq(p.theta, dim), 1.0);
            case "linear" -> {
                double factor = p.requireFactor(c, 0);
                double[] f = RopeConfig.defaultInvFreq(p.theta, dim);
                for (int i = 0; i < f.length; i++) f[i] = (float) (f[i] / factor);
                yield new RopeConfig(dim, interleaved, f, 1.0);
            }
            case "ntk" -> {
                if (arch != Architecture.MOE_PLUS_PLUS) throw c.error(p.keyPrefix + "type", "\"ntk\" is only defined for MoE++");
                double factor = p.requireFactor(c, 0);
                yield new RopeConfig(dim, interleaved, RopeConfig.defaultInvFreq(p.theta * factor, dim), 1.0);
            }
            case "yarn" -> {
                double factor = p.requireFactor(c, 1);
                int original = p.intOr(c, "original_max_position_embeddings", maxPos);
                if (p.has("original_max_position_embeddings")) factor = (double) maxPos / original;
                double[] f = RopeConfig.yarnInvFreq(p.theta, dim, factor, original, p.doubleOr(c, "beta_fast", 32),
                        p.doubleOr(c, "beta_slow", 1), p.boolOr(c, "truncate", true));
                double mscale = p.doubleOr(c, "mscale", 0);
                double mscaleAll = p.doubleOr(c, "mscale_all_dim", 0);
                double attentionFactor;
                if (p.has("attention_factor")) attentionFactor = p.doubleOr(c, "attention_factor", 1);
                else if (mscale != 0 && mscaleAll != 0) {
                    attentionFactor = RopeConfig.yarnMscale(factor, mscale) / RopeConfig.yarnMscale(factor, mscaleAll);
                } else attentionFactor = RopeConfig.yarnMscale(factor, 1);
                yield new RopeConfig(dim, interleaved, f, attentionFactor);
            }
            default -> throw c.error(p.keyPrefix + "type", "\"" + p.type + "\" is not supported (default, linear, dynamic, yarn)");
        };
    }

    /** DeepSeek multiplies the softmax scale by mscale(factor, mscale_all_dim)² under YaRN (the original code). */
    private static AttentionConfig withDeepseekSoftmaxScale(JsonConfig c, AttentionConfig a) {
        RopeParams p = ropeParams(c, Architecture.DEEPSEEK_V3);
        float scale = a.softmaxScale();
        if (p.type.equals("yarn")) {
            double mscaleAll = p.doubleOr(c, "mscale_all_dim", 0);
            if (mscaleAll != 0) {
                double m = RopeConfig.yarnMscale(p.requireFactor(c, 1), mscaleAll);
                scale = (float) (scale * m * m);
            }
        }
        return new AttentionConfig(a.kind(), a.numHeads(), a.numKvHeads(), a.headDim(), a.qkvBias(), a.outputBias(),
                a.qkNorm(), a.clipQkv(), a.slidingWindow(), a.mla(), scale);
    }

    /** The three spellings: v5 rope_parameters; rope_theta + rope_scaling with "type" or "rope_type". */
    private record RopeParams(String type, double theta, JsonNode params, String keyPrefix) {
        boolean has(String key) {
            return params != null && params.has(key) && !params.get(key).isNull();
        }

        double doubleOr(JsonConfig c, String key, double fallback) {
            if (!has(key)) return fallback;
            JsonNode n = params.get(key);
            if (!n.isNumber()) throw c.error(keyPrefix + key, "must be a number, got " + n);
            return n.asDouble();
        }

        int intOr(JsonConfig c, String key, int fallback) {
            if (!has(key)) return fallback;
            JsonNode n = params.get(key);
            if (!n.isIntegralNumber() || n.asInt() <= 0) throw c.error(keyPrefix + key, "must be a positive integer, got " + n);
            return n.asInt();
        }

        boolean boolOr(JsonConfig c, String key, boolean fallback) {
            if (!has(key)) return fallback;
            JsonNode n = params.get(key);
            if (!n.isBoolean()) throw c.error(keyPrefix + key, "must be true or false, got " + n);
            return n.asBoolean();
        }

        double requireFactor(JsonConfig c, double minimum) {
            if (!has("factor")) throw c.error(keyPrefix + "factor", "is required for rope type " + type);
            double f = doubleOr(c, "factor", 1);
            if (!(f > minimum) && !(minimum == 1 && f == 1)) throw c.error(keyPrefix + "factor", "must be greater than " + minimum + ", got " + f);
            return f;
        }
    }

    private static RopeParams ropeParams(JsonConfig c, Architecture arch) {
        double defaultTheta = arch == Architecture.MIXTRAL ? 1e6 : 1e4;
        JsonNode v5 = c.node("rope_parameters");
        if (v5 != null) {
            if (!v5.isObject()) throw c.error("rope_parameters", "must be an object");
            String type = v5.has("rope_type") ? v5.get("rope_type").asText() : v5.has("type") ? v5.get("type").asText() : "default";
            double theta = v5.has("rope_theta") ? v5.get("rope_theta").asDouble() : c.doubleOr("rope_theta", defaultTheta);
            return new RopeParams(type.toLowerCase(Locale.ROOT), theta, v5, "rope_parameters.");
        }
        double theta = c.doubleOr("rope_theta", defaultTheta);
        JsonNode scaling = c.node("rope_scaling");
        if (scaling == null) return new RopeParams("default", theta, null, "rope_scaling.");
        if (!scaling.isObject()) throw c.error("rope_scaling", "must be an object or null");
        String type = scaling.has("rope_type") ? scaling.get("rope_type").asText()
                : scaling.has("type") ? scaling.get("type").asText() : "default";
        return new RopeParams(type.toLowerCase(Locale.ROOT), theta, scaling, "rope_scaling.");
    }

    /** The names of every config key this parser reads, for documentation and `moe inspect`. */
    public static List<String> knownKeys() {
        return new ArrayList<>(List.of("architectures", "hidden_size", "num_hidden_layers", "vocab_size",
                "num_attention_heads", "num_key_value_heads", "head_dim", "rms_norm_eps", "tie_word_embeddings",
                "max_position_embeddings", "rope_theta", "rope_scaling", "rope_parameters", "hidden_act",
                "intermediate_size", "moe_intermediate_size", "shared_expert_intermediate_size", "num_experts",
                "num_local_experts", "n_routed_experts", "n_shared_experts", "num_experts_per_tok", "norm_topk_prob",
                "decoder_sparse_step", "mlp_only_layers", "qkv_bias", "attention_bias", "clip_qkv", "sliding_window",
                "use_sliding_window", "max_window_layers", "layer_types", "q_lora_rank", "kv_lora_rank",
                "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "first_k_dense_replace", "moe_layer_freq",
                "topk_method", "scoring_func", "n_group", "topk_group", "routed_scaling_factor", "rope_interleave",
                "moe_expert_interval", "moe_use_mixtral_gating", "moe_2layer_gate", "moe_use_logits_norm",
                "moe_gate_norm_std", "moe_feature_no_mul_topk", "bos_token_id", "eos_token_id"));
    }
}
