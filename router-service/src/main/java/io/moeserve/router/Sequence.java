package io.moeserve.router;

import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.runtime.generate.Sampler;
import io.smallrye.mutiny.subscription.MultiEmitter;

/**
 * One generation request inside the engine: its prompt and limits, its sampler, where it stands (waiting,
 * prefilling, decoding), and the stream its tokens go to. Owned by the engine thread, except {@link #cancelled},
 * which the gRPC side sets when the client goes away.
 */
final class Sequence {
    enum Phase { WAITING, PREFILL, DECODE, DONE }

    final String requestId;
    final int[] prompt;
    final int maxNew;
    /** Tokens that end the sequence (EOS unless ignored, plus the request's own). */
    final int[] stopIds;
    final Sampler sampler;
    final boolean logprobs;
    final int topLogprobs;
    /** Whether the sequence has a deadline, and the System.nanoTime() after which it fails with DEADLINE_EXCEEDED. */
    final boolean hasDeadline;
    final long deadlineNanos;
    /** KV-cache blocks held for the whole sequence from admission to the end. */
    final int reservedBlocks;
    final long arrivedNanos = System.nanoTime();
    MultiEmitter<? super GenerateResponse> emitter;
    volatile boolean cancelled;

    Phase phase = Phase.WAITING;
    int slot = -1;
    /** Prompt tokens already run through the model. */
    int prefilled;
    /** Prompt tokens in the step being computed. */
    int chunk;
    final int[] generated;
    int generatedCount;

    Sequence(String requestId, int[] prompt, int maxNew, int[] stopIds, Sampler sampler, boolean logprobs, int topLogprobs,
             boolean hasDeadline, long deadlineNanos, int reservedBlocks) {
        this.requestId = requestId;
        this.prompt = prompt;
        this.maxNew = maxNew;
        this.stopIds = stopIds;
        this.sampler = sampler;
        this.logprobs = logprobs;
        this.topLogprobs = topLogprobs;
        this.hasDeadline = hasDeadline;
        this.deadlineNanos = deadlineNanos;
        this.reservedBlocks = reservedBlocks;
        this.generated = new int[maxNew];
    }

    boolean expired(long nowNanos) {
        return hasDeadline && nowNanos - deadlineNanos > 0;
    }

    boolean isStop(int token) {
        for (int s : stopIds) if (s == token) return true;
        return false;
    }

    /** Position of the next token fed to the model. */
    int length() {
        return prompt.length + generatedCount;
    }
}
