package io.moeserve.runtime.generate;

/**
 * How to pick each next token.
 *
 * @param temperature       0 = greedy (argmax, lowest id on ties); otherwise logits are divided by it
 * @param topK              keep the k most likely tokens (0 = off)
 * @param topP              keep the smallest set whose probability reaches p (1 = off)
 * @param minP              drop tokens below minP × the top probability (0 = off)
 * @param repetitionPenalty HF/CTRL penalty over prompt and output tokens (1 = off): positive logits divided,
 *                          negative multiplied
 * @param frequencyPenalty  OpenAI: subtract penalty × count of the token in the output so far
 * @param presencePenalty   OpenAI: subtract penalty once if the token occurred in the output so far
 * @param seed              makes sampling reproducible; null draws a random seed
 */
public record SamplingParams(float temperature, int topK, float topP, float minP, float repetitionPenalty,
                             float frequencyPenalty, float presencePenalty, Long seed) {

    public static final SamplingParams GREEDY = new SamplingParams(0f, 0, 1f, 0f, 1f, 0f, 0f, null);

    public SamplingParams {
        if (!(temperature >= 0) || Float.isInfinite(temperature)) throw new IllegalArgumentException("temperature must be ≥ 0, got " + temperature);
        if (topK < 0) throw new IllegalArgumentException("top_k must be ≥ 0, got " + topK);
        if (!(topP > 0 && topP <= 1)) throw new IllegalArgumentException("top_p must be in (0, 1], got " + topP);
        if (!(minP >= 0 && minP <= 1)) throw new IllegalArgumentException("min_p must be in [0, 1], got " + minP);
        if (!(repetitionPenalty > 0) || Float.isInfinite(repetitionPenalty)) {
            throw new IllegalArgumentException("repetition_penalty must be > 0, got " + repetitionPenalty);
        }
        if (!(frequencyPenalty >= -2 && frequencyPenalty <= 2)) {
            throw new IllegalArgumentException("frequency_penalty must be in [-2, 2], got " + frequencyPenalty);
        }
        if (!(presencePenalty >= -2 && presencePenalty <= 2)) {
            throw new IllegalArgumentException("presence_penalty must be in [-2, 2], got " + presencePenalty);
        }
    }

    public boolean greedy() {
        return temperature == 0f;
    }

    public static SamplingParams sampled(float temperature, int topK, float topP, float minP, Long seed) {
        return new SamplingParams(temperature, topK, topP, minP, 1f, 0f, 0f, seed);
    }

    public SamplingParams withPenalties(float repetition, float frequency, float presence) {
        return new SamplingParams(temperature, topK, topP, minP, repetition, frequency, presence, seed);
    }
}
