package io.moeserve.runtime.family;

/**
 * The tensor names of one routed expert's SwiGLU projections, under its prefix.
 *
 * @param gate the gate projection, or null where it is fused into {@code up} (MoE++: {@code up_proj [2I, H]},
 *             gate rows first)
 * @param up   the up projection
 * @param down the down projection
 */
public record ExpertProjections(String gate, String up, String down) {
    /** The Hugging Face default (Qwen, OLMoE, DeepSeek). */
    public static final ExpertProjections GATE_UP_DOWN =
            new ExpertProjections("gate_proj.weight", "up_proj.weight", "down_proj.weight");

    public boolean fusedGateUp() {
        return gate == null;
    }
}
