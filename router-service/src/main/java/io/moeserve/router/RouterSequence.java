package io.moeserve.router;

import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.proto.router.v1.Usage;
import io.moeserve.runtime.generate.FinishReason;
import io.moeserve.runtime.generate.Sampler;
import io.moeserve.runtime.generate.Sequence;
import io.smallrye.mutiny.subscription.MultiEmitter;

/**
 * One Generate call inside the engine: a {@link Sequence} of the generation loop whose tokens go to the call's
 * gRPC stream, one message per token, the last carrying the finish reason and usage; plus what admission and the
 * engine's checks need (deadline, cancellation). Preempted, it waits again with everything it had, its stream
 * included, and its next message is the token after the last one it sent.
 *
 * <p>Owned by the engine thread, except {@link #cancelled}, which the gRPC side sets when the client goes away,
 * and {@link #emitter}, set once by the gRPC side before the sequence is submitted.
 */
final class RouterSequence extends Sequence {
    final String requestId;
    final boolean logprobs;
    final int topLogprobs;
    /** Whether the sequence has a deadline, and the System.nanoTime() after which it fails with DEADLINE_EXCEEDED. */
    final boolean hasDeadline;
    final long deadlineNanos;
    final long arrivedNanos = System.nanoTime();
    private final TokenStream stream;
    MultiEmitter<? super GenerateResponse> emitter;
    volatile boolean cancelled;
    /** Degraded mode: (token, expert) pairs of this sequence masked so far. Engine thread only. */
    long maskedExpertPairs;

    RouterSequence(String requestId, int[] prompt, int maxNew, int[] stopIds, Sampler sampler, boolean logprobs,
                   int topLogprobs, boolean hasDeadline, long deadlineNanos, TokenStream stream) {
        super(prompt, maxNew, sampler, stopIds);
        this.requestId = requestId;
        this.logprobs = logprobs;
        this.topLogprobs = topLogprobs;
        this.hasDeadline = hasDeadline;
        this.deadlineNanos = deadlineNanos;
        this.stream = stream;
    }

    boolean expired(long nowNanos) {
        return hasDeadline && nowNanos - deadlineNanos > 0;
    }

    @Override
    protected void onLogits(float[] logits, int offset, int vocab) {
        if (logprobs) stream.keepRawLogits(logits, offset);
    }

    @Override
    protected void onToken(int token, FinishReason finish) {
        GenerateResponse.Builder out = stream.message(token, logprobs ? topLogprobs : -1);
        if (maskedExpertPairs > 0) out.setMaskedExpertPairs(maskedExpertPairs);
        if (finish == null) {
            emitter.emit(out.build());
            return;
        }
        out.setFinishReason(finish == FinishReason.STOP
                        ? io.moeserve.proto.router.v1.FinishReason.FINISH_REASON_STOP
                        : io.moeserve.proto.router.v1.FinishReason.FINISH_REASON_LENGTH)
                .setUsage(Usage.newBuilder().setPromptTokens(prompt().length).setCompletionTokens(generatedCount())
                        // After a preemption the blocks found again count too: at most the prompt, as OpenAI's field is.
                        .setCachedPromptTokens(Math.min(cachedPromptTokens(), prompt().length)));
        emitter.emit(out.build());
        emitter.complete();
    }
}
