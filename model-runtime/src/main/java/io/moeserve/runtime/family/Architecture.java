package io.moeserve.runtime.family;

import io.moeserve.runtime.family.deepseek.DeepSeek;
import io.moeserve.runtime.family.mixtral.Mixtral;
import io.moeserve.runtime.family.moepp.MoePlusPlus;
import io.moeserve.runtime.family.olmoe.Olmoe;
import io.moeserve.runtime.family.qwen.Qwen2Moe;
import io.moeserve.runtime.family.qwen.Qwen3Moe;
import java.util.Arrays;
import java.util.Optional;

/**
 * The registry of the Mixture-of-Experts families this runtime computes, by their Hugging Face class names: one
 * line per family, naming the {@link ModelFamily} that reads, lays out and assembles it.
 */
public enum Architecture {
    MIXTRAL("MixtralForCausalLM", new Mixtral()),
    QWEN2_MOE("Qwen2MoeForCausalLM", new Qwen2Moe()),
    QWEN3_MOE("Qwen3MoeForCausalLM", new Qwen3Moe()),
    OLMOE("OlmoeForCausalLM", new Olmoe()),
    DEEPSEEK_V2("DeepseekV2ForCausalLM", DeepSeek.V2),
    DEEPSEEK_V3("DeepseekV3ForCausalLM", DeepSeek.V3),
    /** MoE++ (SkyworkAI/MoE-plus-plus remote code, class {@code MoeForCausalLM}). */
    MOE_PLUS_PLUS("MoeForCausalLM", new MoePlusPlus());

    private final String hfClassName;
    private final ModelFamily family;

    Architecture(String hfClassName, ModelFamily family) {
        this.hfClassName = hfClassName;
        this.family = family;
    }

    /** The value of {@code architectures[0]} in config.json. */
    public String hfClassName() {
        return hfClassName;
    }

    /** What this runtime knows of the family. */
    public ModelFamily family() {
        return family;
    }

    public static Optional<Architecture> fromHfClassName(String name) {
        return Arrays.stream(values()).filter(a -> a.hfClassName.equals(name)).findFirst();
    }

    public static String supportedNames() {
        return String.join(", ", Arrays.stream(values()).map(Architecture::hfClassName).toList());
    }
}
