package io.moeserve.runtime.family;

import io.moeserve.runtime.family.deepseek.DeepSeek;
import io.moeserve.runtime.family.glm.Glm4Moe;
import io.moeserve.runtime.family.gptoss.GptOss;
import io.moeserve.runtime.family.mixtral.Mixtral;
import io.moeserve.runtime.family.moepp.MoePlusPlus;
import io.moeserve.runtime.family.olmoe.Olmoe;
import io.moeserve.runtime.family.qwen.Qwen2Moe;
import io.moeserve.runtime.family.qwen.Qwen3Moe;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;

/**
 * The registry of the Mixture-of-Experts families this runtime computes, by their Hugging Face class names: one
 * line per family, naming the {@link ModelFamily} that reads, lays out and assembles it.
 */
public enum Architecture {
    MIXTRAL("MixtralForCausalLM", new Mixtral(), "mixtral"),
    QWEN2_MOE("Qwen2MoeForCausalLM", new Qwen2Moe(), "qwen2-moe", "qwen2moe"),
    QWEN3_MOE("Qwen3MoeForCausalLM", new Qwen3Moe(), "qwen3-moe", "qwen3moe"),
    OLMOE("OlmoeForCausalLM", new Olmoe(), "olmoe"),
    DEEPSEEK_V2("DeepseekV2ForCausalLM", DeepSeek.V2, "deepseek-v2"),
    DEEPSEEK_V3("DeepseekV3ForCausalLM", DeepSeek.V3, "deepseek-v3"),
    GPT_OSS("GptOssForCausalLM", new GptOss(), "gpt-oss", "gptoss"),
    /** MoE++ (SkyworkAI/MoE-plus-plus remote code, class {@code MoeForCausalLM}). */
    MOE_PLUS_PLUS("MoeForCausalLM", new MoePlusPlus(), "moe-plus-plus", "moe++", "moepp"),
    /** GLM-4.5 and GLM-4.5-Air (also GLM-4.6/4.7, the same class). */
    GLM4_MOE("Glm4MoeForCausalLM", new Glm4Moe(), "glm4-moe", "glm4moe", "glm");

    private final String hfClassName;
    private final ModelFamily family;
    private final List<String> shortNames;

    /** @param shortNames what the moe command accepts for it, the first being its name there */
    Architecture(String hfClassName, ModelFamily family, String... shortNames) {
        this.hfClassName = hfClassName;
        this.family = family;
        this.shortNames = List.of(shortNames);
    }

    /** The value of {@code architectures[0]} in config.json. */
    public String hfClassName() {
        return hfClassName;
    }

    /** What this runtime knows of the family. */
    public ModelFamily family() {
        return family;
    }

    /** The family's name in the moe command, e.g. {@code qwen2-moe}. */
    public String shortName() {
        return shortNames.getFirst();
    }

    /** By short name (any case, {@code _} for {@code -}) or by Hugging Face class name. */
    public static Optional<Architecture> fromName(String name) {
        String k = name.toLowerCase(Locale.ROOT).replace('_', '-');
        return Arrays.stream(values()).filter(a -> a.shortNames.contains(k)).findFirst().or(() -> fromHfClassName(name));
    }

    public static Optional<Architecture> fromHfClassName(String name) {
        return Arrays.stream(values()).filter(a -> a.hfClassName.equals(name)).findFirst();
    }

    public static String supportedNames() {
        return String.join(", ", Arrays.stream(values()).map(Architecture::hfClassName).toList());
    }
}
