package io.moeserve.runtime.generate;

/** What one sequence produced. The stop token, if one ended it, is the last output token. */
public record GenerationResult(int[] promptTokens, int[] outputTokens, FinishReason finishReason) {}
