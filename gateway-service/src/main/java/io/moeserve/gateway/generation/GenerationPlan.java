package io.moeserve.gateway.generation;

import io.moeserve.gateway.openai.CompletionIdentity;
import io.moeserve.gateway.openai.GenerationOptions;
import java.time.Duration;
import java.util.List;

/**
 * A validated request, ready for the router: the response's identity, the encoded prompts, the token budget of
 * each, and the options. Choice {@code c} generates from prompt {@code c / n} (OpenAI's order for a prompt array).
 *
 * @param identity     the completion's id, created time, model and endpoint; the router call's model_id too
 * @param maxNewTokens per prompt: max_tokens, or what fits the context when it was not given
 * @param endTokenIds  the model's end-of-sequence ids plus stop_token_ids (and harmony's turn ends): never text
 * @param output       how a chat completion's output is parsed (harmony, Qwen, DeepSeek); null for plain text
 * @param attempts     router calls each choice may make (moe.gateway.router.max-attempts)
 * @param migration    whether a choice resumes on another router after output (moe.gateway.migration.enabled)
 */
public record GenerationPlan(CompletionIdentity identity, List<int[]> prompts, int[] maxNewTokens,
                             GenerationOptions options, int[] endTokenIds, Duration timeout, OutputFormat output,
                             int attempts, boolean migration) {

    int choiceCount() {
        return prompts.size() * options.n();
    }

    int[] promptOf(int choice) {
        return prompts.get(choice / options.n());
    }

    int maxNewTokensOf(int choice) {
        return maxNewTokens[choice / options.n()];
    }

    /** Prompt tokens for usage: each prompt once, however many choices it has. */
    int promptTokens() {
        int total = 0;
        for (int[] p : prompts) total += p.length;
        return total;
    }
}
