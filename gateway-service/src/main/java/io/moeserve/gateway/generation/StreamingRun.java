package io.moeserve.gateway.generation;

import io.moeserve.gateway.GatewayMetrics;
import io.moeserve.gateway.ServedModel;
import io.moeserve.gateway.openai.LogprobEntry;
import io.moeserve.gateway.openai.OpenAiException;
import io.moeserve.gateway.openai.SseChunkWriter;
import io.moeserve.gateway.router.RouterClient;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.subscription.MultiEmitter;
import io.smallrye.mutiny.subscription.UniEmitter;
import java.util.ArrayDeque;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import org.jboss.resteasy.reactive.RestMulti;

/**
 * A run whose response is one SSE stream ({@code "stream": true}): the choices' chunks interleave in the order
 * their steps were decoded, and {@code data: [DONE]} ends it.
 */
final class StreamingRun extends GenerationRun {
    /*
     * When the HTTP status is decided. A router that is saturated answers RESOURCE_EXHAUSTED, which must reach
     * the client as 429 with Retry-After, and so must every other error before any output: an SSE response that
     * has started can only carry errors inside the stream. So the response is "committed" (status 200, headers,
     * role chunks) only when every choice has delivered its first message, which the router sends once the
     * sequence is admitted and prefilled. start() is the Uni that completes then, or fails with the error;
     * response() hands it to RestMulti.fromUniResponse, whose status and headers follow from it, and which
     * subscribes to events() once it has completed.
     *
     * Errors after the commit become a final event {@code data: {"error": {...}}} followed by
     * {@code data: [DONE]}, what vLLM sends; the official OpenAI SDKs raise an exception when they read an
     * "error" field, so a client never mistakes a failed stream for a finished one.
     *
     * Delivery. Chunks are written under the lock, as steps are accepted, into the outbox; the drain loop hands
     * them to the SSE subscriber (the sink) outside it, in that order. Before the sink exists (the start signal
     * has not reached RESTEasy yet) they wait in the outbox.
     *
     * Flow control. Calls are started with one message requested (GenerationCall). The next message is
     * requested only while the HTTP subscriber has demand, so a slow reader slows the router stream (through
     * HTTP/2 flow control) rather than piling chunks up in memory; otherwise the choice is "paused" and resumed
     * by the subscriber's next request. The pause flag is set before demand is re-checked and cleared by
     * compare-and-set, so a request that races with pausing is never lost.
     */

    /** After [DONE] in the outbox: complete the sink. */
    private static final Object COMPLETE = new Object();

    /**
     * Per choice: its next router message waits for the subscriber's demand. Atomic, not guarded: set under the
     * lock, but cleared outside it by whichever of the choice's handler and the subscriber's request comes first.
     */
    private final AtomicBoolean[] paused;

    // Guarded by this.
    /** Not thread-safe (one generator and buffer for the whole stream). */
    private final SseChunkWriter sse;
    private final ArrayDeque<Object> outbox = new ArrayDeque<>();
    private boolean committed;
    private boolean startSignalled;
    private OpenAiException failure;
    private UniEmitter<? super Void> startEmitter;
    /** Set once, under the lock; read without it by the drainer (after nextDelivery saw it set) and hasDemand. */
    private volatile MultiEmitter<? super byte[]> sink;

    StreamingRun(GenerationPlan plan, ServedModel model, RouterClient router, GatewayMetrics metrics) {
        super(plan, model, router, metrics);
        this.sse = new SseChunkWriter(plan.identity(), plan.options().includeUsage(), model.tokenTexts());
        this.paused = new AtomicBoolean[choices.length];
        for (int c = 0; c < paused.length; c++) paused[c] = new AtomicBoolean();
    }

    @Override
    RestMulti<byte[]> response() {
        Map<String, List<String>> headers = Map.of(
                "Content-Type", List.of("text/event-stream"),
                "Cache-Control", List.of("no-cache"),
                // nginx and similar proxies otherwise buffer the stream
                "X-Accel-Buffering", List.of("no"),
                "X-Request-Id", List.of(plan.identity().id()));
        return RestMulti.fromUniResponse(start(), started -> events(), started -> withDegraded(headers), started -> 200);
    }

    /** Completes when the response can be committed (every choice has begun), or fails before. */
    private Uni<Void> start() {
        return Uni.createFrom().<Void>emitter(e -> {
            synchronized (this) {
                startEmitter = e;
            }
            launch();
        }).onCancellation().invoke(() -> cancel("client went away before the stream started"));
    }

    /** After {@link #start()}: the SSE bytes, chunk by chunk, ending with [DONE]. */
    private Multi<byte[]> events() {
        return Multi.createFrom().<byte[]>emitter(e -> {
            e.onRequest(n -> resumePaused());
            e.onCancellation(() -> cancel("client went away"));
            synchronized (this) {
                sink = e;
            }
            drain();
            resumePaused();
        });
    }

    @Override
    void accepted(Choice choice, ChoiceDecoder.Step step, boolean first) {
        if (first && plan.identity().chat()) outbox.add(sse.role(choice.index));
        // Completions' echo: the prompt's text is the choice's first chunk.
        if (first && echoOf(choice.index) != null) outbox.add(sse.content(choice.index, echoOf(choice.index), null));
        List<LogprobEntry> logprobs = plan.options().logprobs() >= 0 ? step.logprobs() : null;
        if (plan.output() != null) {
            // Parsed output: reasoning and tool call pieces go out with the content in one delta.
            if (!step.text().isEmpty() || !step.reasoning().isEmpty() || !step.toolCalls().isEmpty()
                    || !step.logprobs().isEmpty()) {
                outbox.add(sse.parsed(choice.index, step.text(), step.reasoning(), step.toolCalls(), logprobs));
            }
        } else if (!step.text().isEmpty() || !step.logprobs().isEmpty()) {
            outbox.add(sse.content(choice.index, step.text(), logprobs));
        }
        if (step.finishReason() != null) {
            outbox.add(sse.finish(choice.index, step.finishReason()));
        } else {
            paused[choice.index].set(true);
        }
        if (!committed && allBegun()) committed = true;
    }

    @Override
    void finished(int completionTokens, int cachedPromptTokens) {
        if (plan.options().includeUsage()) outbox.add(sse.usage(plan.promptTokens(), completionTokens, cachedPromptTokens));
        long masked = maskedExpertPairs();
        if (masked > 0) {
            // The header went out with the first chunk and counts only what was masked by then; an SSE comment,
            // which clients skip, gives the whole request's count.
            outbox.add((": " + DEGRADED_HEADER.toLowerCase(java.util.Locale.ROOT) + " masked-experts=" + masked + "\n\n")
                    .getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        }
        outbox.add(sse.done());
        outbox.add(COMPLETE);
    }

    /** Before the commit as the HTTP error, after it inside the stream. */
    @Override
    void failed(OpenAiException e) {
        if (committed) {
            outbox.add(sse.error(e.error()));
            outbox.add(sse.done());
            outbox.add(COMPLETE);
        } else {
            failure = e;
        }
    }

    @Override
    void discarded() {
        outbox.clear();
    }

    @Override
    void requestNext(Choice choice) {
        if (hasDemand() && paused[choice.index].compareAndSet(true, false)) choice.call().requestNext();
    }

    private boolean hasDemand() {
        MultiEmitter<? super byte[]> s = sink;
        return s != null && s.requested() > 0;
    }

    private void resumePaused() {
        for (Choice c : choices) {
            if (paused[c.index].compareAndSet(true, false)) c.call().requestNext();
        }
    }

    /** The start signal once it is due, then the outbox once there is a sink. */
    @Override
    Object nextDelivery() {
        if (!startSignalled && startEmitter != null) {
            UniEmitter<? super Void> e = startEmitter;
            if (failure != null) {
                startSignalled = true;
                OpenAiException f = failure;
                return (Runnable) () -> e.fail(f);
            }
            if (committed) {
                startSignalled = true;
                return (Runnable) () -> e.complete(null);
            }
        }
        return sink == null ? null : outbox.poll();
    }

    @Override
    void deliver(Object next) {
        if (next instanceof byte[] chunk) {
            sink.emit(chunk);
        } else if (next == COMPLETE) {
            sink.complete();
        } else {
            ((Runnable) next).run();
        }
    }
}
