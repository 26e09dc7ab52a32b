package io.moeserve.runtime.model;

import java.util.Arrays;
import java.util.Optional;

/** The Mixture-of-Experts model families this runtime computes, by their Hugging Face class names. */
public enum Architecture {
    MIXTRAL("MixtralForCausalLM"),
    QWEN2_MOE("Qwen2MoeForCausalLM"),
    QWEN3_MOE("Qwen3MoeForCausalLM"),
    OLMOE("OlmoeForCausalLM"),
    DEEPSEEK_V2("DeepseekV2ForCausalLM"),
    DEEPSEEK_V3("DeepseekV3ForCausalLM"),
    /** MoE++ (SkyworkAI/MoE-plus-plus remote code, class {@code MoeForCausalLM}). */
    MOE_PLUS_PLUS("MoeForCausalLM");

    private final String hfClassName;

    Architecture(String hfClassName) {
        this.hfClassName = hfClassName;
    }

    /** The value of {@code architectures[0]} in config.json. */
    public String hfClassName() {
        return hfClassName;
    }

    public static Optional<Architecture> fromHfClassName(String name) {
        return Arrays.stream(values()).filter(a -> a.hfClassName.equals(name)).findFirst();
    }

    public static String supportedNames() {
        return String.join(", ", Arrays.stream(values()).map(Architecture::hfClassName).toList());
    }
}
