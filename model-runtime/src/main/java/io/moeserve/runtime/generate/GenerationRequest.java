package io.moeserve.runtime.generate;

/**
 * One sequence to generate.
 *
 * @param promptTokens  the prompt, already tokenized (at least one token)
 * @param sampling      how to choose tokens
 * @param maxNewTokens  most tokens to generate
 * @param stopTokenIds  tokens that end the sequence (usually generation_config's eos_token_id); may be empty
 */
public record GenerationRequest(int[] promptTokens, SamplingParams sampling, int maxNewTokens, int[] stopTokenIds) {
    public GenerationRequest {
        if (promptTokens == null || promptTokens.length == 0) throw new IllegalArgumentException("the prompt must hold at least one token");
        if (maxNewTokens < 0) throw new IllegalArgumentException("max_new_tokens must be ≥ 0, got " + maxNewTokens);
        if (stopTokenIds == null) stopTokenIds = new int[0];
    }

    public boolean isStop(int token) {
        for (int s : stopTokenIds) if (s == token) return true;
        return false;
    }
}
