package io.moeserve.runtime.family;

/** What a checkpoint tensor is for; the synthetic generator initialises each role differently. */
public enum TensorRole {
    EMBEDDING,
    /** nn.Linear weight [out, in]. */
    LINEAR,
    /** RMSNorm weight (around 1). */
    NORM,
    BIAS,
    /** DeepSeek-V3's and GLM-4.5's e_score_correction_bias: selection-only, kept in float32. */
    SCORE_BIAS,
    /** gpt-oss's per-head attention sink logits. */
    ATTENTION_SINK,
    /** gpt-oss's fused expert weights, transposed: [E, in, out], so the fan-in is the middle dimension. */
    EXPERTS_IN_OUT,
    /** MoE++ constant expert vector. */
    CONSTANT_VECTOR
}
