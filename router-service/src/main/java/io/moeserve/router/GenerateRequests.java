package io.moeserve.router;

import io.grpc.Deadline;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.proto.router.v1.SamplingParameters;
import io.moeserve.runtime.generate.Sampler;
import io.moeserve.runtime.generate.SamplingParams;
import io.moeserve.runtime.generate.TokenConstraint;
import io.moeserve.runtime.model.ExpertSkipping;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * Turns a Generate request into a {@link RouterSequence}, or refuses it with the status the contract names: NOT_FOUND
 * for another model, INVALID_ARGUMENT for bad parameters or token ids, OUT_OF_RANGE when the sequence could never
 * fit the context or the KV-cache budget; a structured_output constrains the sequence ({@link GrammarCache}).
 */
final class GenerateRequests {
    private static final int MAX_TOP_LOGPROBS = 20;

    private final String modelId;
    private final int vocab;
    private final int maxContext;
    private final List<Integer> eosIds;
    private final int blockSize;
    private final int totalBlocks;
    private final TokenStream stream;
    private final GrammarCache grammars;

    /**
     * @param stream   what the sequences' tokens are turned into messages with (the engine thread's)
     * @param grammars structured output's compiled schemas
     */
    GenerateRequests(String modelId, int vocab, int maxContext, List<Integer> eosIds, int blockSize, int totalBlocks,
                     TokenStream stream, GrammarCache grammars) {
        this.stream = stream;
        this.grammars = grammars;
        this.modelId = modelId;
        this.vocab = vocab;
        this.maxContext = maxContext;
        this.eosIds = eosIds;
        this.blockSize = blockSize;
        this.totalBlocks = totalBlocks;
    }

    RouterSequence open(GenerateRequest r, Deadline grpcDeadline) {
        if (!r.getModelId().isEmpty() && !r.getModelId().equals(modelId)) {
            throw error(Status.NOT_FOUND, "the router serves model '" + modelId + "', not '" + r.getModelId() + "'");
        }
        int n = r.getPromptTokenIdsCount();
        if (n == 0) throw error(Status.INVALID_ARGUMENT, "the prompt must hold at least one token");
        int[] prompt = new int[n];
        for (int i = 0; i < n; i++) {
            int t = r.getPromptTokenIds(i);
            if (t < 0 || t >= vocab) {
                throw error(Status.INVALID_ARGUMENT, "prompt token " + i + " has id " + Integer.toUnsignedString(t)
                        + ", outside the vocabulary [0, " + vocab + ")");
            }
            prompt[i] = t;
        }
        // Request migration: the prompt's tail is output another router generated (router.proto).
        int resumed = r.getResumedOutputTokens();
        if (resumed < 0 || resumed >= n) {
            throw error(Status.INVALID_ARGUMENT, "resumed_output_tokens (" + Integer.toUnsignedString(resumed)
                    + ") must leave at least one of the " + n + " prompt tokens");
        }
        if (r.getMaxNewTokens() == 0) throw error(Status.INVALID_ARGUMENT, "max_new_tokens must be at least 1");
        long total = (long) n + Integer.toUnsignedLong(r.getMaxNewTokens());
        if (total > maxContext) {
            throw error(Status.OUT_OF_RANGE, "the prompt (" + n + " tokens) plus max_new_tokens (" + Integer.toUnsignedString(r.getMaxNewTokens())
                    + ") is " + total + " tokens, over the context limit of " + maxContext);
        }
        // Admission takes only the prompt's blocks, but a sequence must be able to grow alone to its longest: otherwise it
        // would be preempted for itself and never finish.
        int blocks = (int) ((total + blockSize - 1) / blockSize);
        if (blocks > totalBlocks) {
            throw error(Status.OUT_OF_RANGE, "the sequence may grow to " + total + " tokens (prompt + max_new_tokens) but the router's "
                    + "whole KV cache holds " + (long) totalBlocks * blockSize);
        }
        if (r.getTopLogprobs() > MAX_TOP_LOGPROBS) {
            throw error(Status.INVALID_ARGUMENT, "top_logprobs must be at most " + MAX_TOP_LOGPROBS + ", got " + r.getTopLogprobs());
        }
        Set<Integer> stops = new LinkedHashSet<>();
        if (!r.getIgnoreEos()) stops.addAll(eosIds);
        for (int s : r.getStopTokenIdsList()) {
            if (s < 0 || s >= vocab) throw error(Status.INVALID_ARGUMENT, "stop token id " + Integer.toUnsignedString(s)
                    + " is outside the vocabulary");
            stops.add(s);
        }
        SamplingParams sampling;
        try {
            sampling = sampling(r.getSampling());
        } catch (IllegalArgumentException e) {
            throw error(Status.INVALID_ARGUMENT, e.getMessage());
        }
        if (r.hasSkipThreshold() && !ExpertSkipping.validThreshold(r.getSkipThreshold())) {
            throw error(Status.INVALID_ARGUMENT, "skip_threshold must lie in [0, 1], got " + r.getSkipThreshold());
        }
        // Remaining times, compared rather than absolute instants (nanoTime may be negative, so no sentinel).
        long now = System.nanoTime();
        boolean hasDeadline = false;
        long remaining = Long.MAX_VALUE;
        if (grpcDeadline != null) {
            hasDeadline = true;
            remaining = grpcDeadline.timeRemaining(TimeUnit.NANOSECONDS);
        }
        if (r.getDeadlineUnixMillis() != 0) {
            hasDeadline = true;
            remaining = Math.min(remaining, TimeUnit.MILLISECONDS.toNanos(r.getDeadlineUnixMillis() - System.currentTimeMillis()));
        }
        long deadline = hasDeadline ? now + remaining : 0;
        int[] stopIds = stops.stream().mapToInt(Integer::intValue).toArray();
        TokenConstraint constraint = r.hasStructuredOutput() ? grammars.forRequest(r.getStructuredOutput()).newConstraint(stopIds) : null;
        if (constraint != null && resumed > 0) resumeConstraint(constraint, prompt, n - resumed, resumed, vocab);
        Sampler sampler = new Sampler(sampling, vocab, prompt);
        sampler.resume(prompt, n - resumed, resumed);
        RouterSequence sequence = new RouterSequence(r.getRequestId(), prompt, (int) (total - n), stopIds, sampler,
                r.getLogprobs() || r.getTopLogprobs() > 0, r.getTopLogprobs(), hasDeadline, deadline, stream);
        if (r.hasSkipThreshold()) sequence.setSkipThreshold(r.getSkipThreshold());
        if (constraint != null) sequence.constrain(constraint);
        return sequence;
    }

    /**
     * A migrated sequence's constraint moves past the output the first router already generated under it; output the
     * constraint would not have allowed is refused. Once per migrated request, so a mask per resumed token is cheap.
     */
    private static void resumeConstraint(TokenConstraint constraint, int[] prompt, int from, int count, int vocab) {
        float[] logits = new float[vocab];
        for (int i = from; i < from + count; i++) {
            Arrays.fill(logits, 0f);
            constraint.mask(logits, 0, vocab);
            if (logits[prompt[i]] == Float.NEGATIVE_INFINITY) {
                throw error(Status.INVALID_ARGUMENT, "resumed output token " + prompt[i] + " (at " + (i - from)
                        + ") is not allowed by the request's structured output");
            }
            constraint.accept(prompt[i]);
        }
    }

    private static SamplingParams sampling(SamplingParameters p) {
        return new SamplingParams(p.getTemperature(), p.getTopK(), p.hasTopP() ? p.getTopP() : 1f, p.getMinP(),
                p.hasRepetitionPenalty() ? p.getRepetitionPenalty() : 1f, p.getFrequencyPenalty(), p.getPresencePenalty(),
                p.hasSeed() ? p.getSeed() : null);
    }

    static StatusRuntimeException error(Status status, String message) {
        return status.withDescription(message).asRuntimeException();
    }
}
