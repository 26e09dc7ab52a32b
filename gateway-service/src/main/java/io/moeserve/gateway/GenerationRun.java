package io.moeserve.gateway;

import io.moeserve.tokenizer.TokenTexts;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.proto.router.v1.SamplingParameters;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.subscription.MultiEmitter;
import io.smallrye.mutiny.subscription.UniEmitter;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * One completion request in flight: its n router Generate streams (n × prompts), assembled into an SSE stream or
 * into one JSON body. Built by a resource, used once.
 */
final class GenerationRun {
    /*
     * Shape. Each choice is one router call whose messages go through its ChoiceDecoder (detokenizing, stop
     * strings, logprobs). A streaming response is one SSE stream in which the choices' chunks interleave; a
     * non-streaming one waits for every choice and writes one body. Both come out of the same decoder steps.
     *
     * When the HTTP status is decided. A router that is saturated answers RESOURCE_EXHAUSTED, which must reach
     * the client as 429 with Retry-After, and so must every other error before any output: an SSE response that
     * has started can only carry errors inside the stream. So a streaming response is "committed" (status 200,
     * headers, role chunks) only when every choice has delivered its first message, which the router sends once
     * the sequence is admitted and prefilled. start() is the Uni that completes then, or fails with the error; the
     * resource hands it to RestMulti.fromUniResponse, whose status and headers follow from it.
     *
     * Errors after the commit become a final event {@code data: {"error": {...}}} followed by
     * {@code data: [DONE]}, what vLLM sends; the official OpenAI SDKs raise an exception when they read an
     * "error" field, so a client never mistakes a failed stream for a finished one. The other choices' calls
     * are cancelled.
     *
     * Cancellation. If the client goes away (RESTEasy cancels our Uni or Multi when the connection closes), or a
     * stop string matches, the router call is cancelled through gRPC, which ends the router's sequence and
     * frees its KV cache. A call that has finished is never cancelled; errors that come back after we cancelled
     * are ignored.
     *
     * Threads and order. gRPC delivers each call's messages serially, but different choices on different
     * threads, and the HTTP side requests and cancels from the event loop. All state is guarded by one lock;
     * nothing is handed to Mutiny while holding it (emitters call subscribers inline, which may call back).
     * Instead, chunks and signals go into an outbox under the lock, and a drain loop (the usual "work in
     * progress" counter: one drainer at a time, others leave their work to it) delivers them in order outside
     * it. gRPC requests and cancels also happen outside the lock.
     *
     * Flow control. Calls are started with one message requested (GenerationCall). When streaming, the next
     * message is requested only while the HTTP subscriber has demand, so a slow reader slows the router stream
     * (through HTTP/2 flow control) rather than piling chunks up in memory; otherwise the choice is "paused" and
     * resumed by the subscriber's next request. The pause flag is set before demand is re-checked and cleared
     * by compare-and-set, so a request that races with pausing is never lost. Without streaming, every message
     * is requested as soon as the one before it is handled.
     */

    private static final Object COMPLETE = new Object();

    private final GenerationPlan plan;
    private final ServedModel model;
    private final RouterClient router;
    private final GatewayMetrics metrics;
    private final Choice[] choices;
    private final SseChunkWriter sse;
    private final boolean streaming;
    private final long startNanos = System.nanoTime();

    // Guarded by this.
    private final ArrayDeque<Object> outbox = new ArrayDeque<>();
    private int awaitingFirst;
    private int running;
    private boolean committed;
    private boolean ended;
    private boolean cancelled;
    private boolean startSignalled;
    private boolean launched;
    private OpenAiException failure;
    private byte[] result;
    private UniEmitter<? super Void> startEmitter;
    private UniEmitter<? super byte[]> resultEmitter;
    /** Set once, under the lock; read by the drainer after nextDelivery saw it set. */
    private volatile MultiEmitter<? super byte[]> sink;

    private final AtomicInteger wip = new AtomicInteger();

    GenerationRun(GenerationPlan plan, ServedModel model, RouterClient router, GatewayMetrics metrics) {
        this.plan = plan;
        this.model = model;
        this.router = router;
        this.metrics = metrics;
        this.streaming = plan.options().stream();
        this.sse = streaming ? new SseChunkWriter(plan, model.tokenTexts()) : null;
        this.choices = new Choice[plan.choiceCount()];
        boolean logprobs = plan.options().logprobs() >= 0;
        for (int c = 0; c < choices.length; c++) {
            choices[c] = new Choice(c, new ChoiceDecoder(model, plan.promptOf(c), plan.options().stop(),
                    plan.endTokenIds(), logprobs), !streaming && logprobs);
        }
        this.awaitingFirst = choices.length;
        this.running = choices.length;
    }

    /** Streaming: completes when the response can be committed (every choice has begun), or fails before. */
    Uni<Void> start() {
        return Uni.createFrom().<Void>emitter(e -> {
            synchronized (this) {
                startEmitter = e;
            }
            launch();
        }).onCancellation().invoke(() -> cancel("client went away before the stream started"));
    }

    /** Streaming, after {@link #start()}: the SSE bytes, chunk by chunk, ending with [DONE]. */
    Multi<byte[]> events() {
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

    /** Not streaming: the whole response body once every choice has finished. */
    Uni<byte[]> result() {
        return Uni.createFrom().<byte[]>emitter(e -> {
            synchronized (this) {
                resultEmitter = e;
            }
            launch();
        }).onCancellation().invoke(() -> cancel("client went away"));
    }

    private void launch() {
        synchronized (this) {
            if (ended) return;
            launched = true;
        }
        metrics.runStarted(streaming);
        GenerateRequest.Builder base = baseRequest();
        for (Choice choice : choices) {
            synchronized (this) {
                if (ended) return;
            }
            GenerateRequest.Builder request = base.clone()
                    .setRequestId(plan.id() + "-" + choice.index)
                    .setMaxNewTokens(plan.maxNewTokensOf(choice.index));
            for (int id : plan.promptOf(choice.index)) request.addPromptTokenIds(id);
            if (plan.options().seed().isPresent()) {
                // seed + i for the i-th choice of a prompt: reproducible, yet not n copies of one answer.
                request.getSamplingBuilder().setSeed(plan.options().seed().getAsLong() + choice.index % plan.options().n());
            }
            try {
                router.generate(request.build(), plan.timeout(), choice.call);
            } catch (RuntimeException e) {
                choice.onError(e);
            }
        }
    }

    private GenerateRequest.Builder baseRequest() {
        GenerationOptions o = plan.options();
        SamplingParameters.Builder sampling = SamplingParameters.newBuilder()
                .setTemperature((float) o.temperature())
                .setTopK(o.topK())
                .setMinP((float) o.minP())
                .setFrequencyPenalty((float) o.frequencyPenalty())
                .setPresencePenalty((float) o.presencePenalty());
        if (o.topP() != 1) sampling.setTopP((float) o.topP());
        o.repetitionPenalty().ifPresent(r -> sampling.setRepetitionPenalty((float) r));
        GenerateRequest.Builder b = GenerateRequest.newBuilder()
                .setModelId(plan.model())
                .setSampling(sampling)
                .setIgnoreEos(o.ignoreEos())
                .setLogprobs(o.logprobs() >= 0)
                .setTopLogprobs(Math.max(0, o.logprobs()))
                .setDeadlineUnixMillis(System.currentTimeMillis() + plan.timeout().toMillis());
        for (int id : o.stopTokenIds()) b.addStopTokenIds(id);
        return b;
    }

    // ---- router events ----

    private void onResponse(Choice choice, GenerateResponse message) {
        ChoiceDecoder.Step step;
        synchronized (this) {
            if (ended || choice.decoder.finished()) return;
            try {
                step = choice.decoder.accept(message);
            } catch (RuntimeException e) {
                // A token id the tokenizer cannot decode (outside its vocabulary, or above 2^31 as uint32).
                fail(OpenAiException.server(500, null, "The router sent output that cannot be decoded: "
                        + e.getMessage()));
                step = null;
            }
            if (step != null) accept(choice, step, message);
        }
        drain();
        if (step == null) {
            cancelCalls("the router's output cannot be decoded");
        } else if (step.stopStringMatched()) {
            choice.call.cancel("stop sequence matched");
        } else if (step.finishReason() == null) {
            if (!streaming) {
                choice.call.requestNext();
            } else if (hasDemand() && choice.paused.compareAndSet(true, false)) {
                choice.call.requestNext();
            }
        }
    }

    /** Under the lock: what one decoded message changes. */
    private void accept(Choice choice, ChoiceDecoder.Step step, GenerateResponse message) {
        if (awaitingFirst > 0 && !choice.begun) {
            choice.begun = true;
            awaitingFirst--;
            if (choice.index == 0) metrics.firstToken(System.nanoTime() - startNanos);
            if (streaming && plan.chat()) outbox.add(sse.role(choice.index));
        }
        if (!step.text().isEmpty() || !step.logprobs().isEmpty()) {
            if (streaming) {
                outbox.add(sse.content(choice.index, step.text(), plan.options().logprobs() >= 0
                        ? step.logprobs() : null));
            } else {
                choice.text.append(step.text());
                if (choice.logprobs != null) choice.logprobs.addAll(step.logprobs());
            }
        }
        if (step.finishReason() != null) {
            choice.finishReason = step.finishReason();
            // The router's count includes the EOS token; after a stop string, what was received counts.
            boolean routerCount = !step.stopStringMatched() && message.hasUsage()
                    && message.getUsage().getCompletionTokens() > 0;
            choice.completionTokens = routerCount ? message.getUsage().getCompletionTokens() : choice.decoder.tokens();
            if (streaming) outbox.add(sse.finish(choice.index, choice.finishReason));
            if (--running == 0) finish();
        } else {
            choice.paused.set(streaming);
        }
        if (streaming && awaitingFirst == 0 && !committed) committed = true;
    }

    private void onError(Choice choice, Throwable error) {
        synchronized (this) {
            if (ended || choice.decoder.finished()) return;
            fail(RouterErrors.translate(error));
        }
        cancelCalls("another choice failed");
        drain();
    }

    private void onCompleted(Choice choice) {
        synchronized (this) {
            if (ended || choice.decoder.finished()) return;
            fail(OpenAiException.server(500, null, "The router ended the generation without a finish reason."));
        }
        cancelCalls("another choice failed");
        drain();
    }

    /** Under the lock: every choice has finished. */
    private void finish() {
        ended = true;
        int completionTokens = 0;
        for (Choice c : choices) completionTokens += c.completionTokens;
        metrics.runFinished(plan.promptTokens(), completionTokens);
        if (streaming) {
            if (plan.options().includeUsage()) outbox.add(sse.usage(plan.promptTokens(), completionTokens));
            outbox.add(SseChunkWriter.DONE);
            outbox.add(COMPLETE);
        } else {
            List<CompletionResponseWriter.ChoiceResult> results = new ArrayList<>(choices.length);
            for (Choice c : choices) {
                results.add(new CompletionResponseWriter.ChoiceResult(c.index, c.text.toString(), c.logprobs,
                        c.finishReason, c.completionTokens));
            }
            result = CompletionResponseWriter.write(plan, results, model.tokenTexts());
        }
    }

    /** Under the lock: the run fails; before the commit as the HTTP error, after it inside the stream. */
    private void fail(OpenAiException e) {
        ended = true;
        metrics.runFailed(e.status());
        if (streaming && committed) {
            outbox.add(sse.error(e.error()));
            outbox.add(SseChunkWriter.DONE);
            outbox.add(COMPLETE);
        } else {
            failure = e;
        }
    }

    /** The client went away: cancel everything, send nothing more. */
    private void cancel(String reason) {
        synchronized (this) {
            if (cancelled) return;
            cancelled = true;
            if (!ended && launched) metrics.runCancelled();
            ended = true;
            outbox.clear();
        }
        cancelCalls(reason);
    }

    private void cancelCalls(String reason) {
        for (Choice c : choices) {
            boolean finished;
            synchronized (this) {
                finished = c.decoder.finished();
            }
            if (!finished) c.call.cancel(reason);
        }
    }

    // ---- delivery ----

    private boolean hasDemand() {
        MultiEmitter<? super byte[]> s = sink;
        return s != null && s.requested() > 0;
    }

    private void resumePaused() {
        for (Choice c : choices) {
            if (c.paused.compareAndSet(true, false)) c.call.requestNext();
        }
    }

    /** Delivers the outbox in order, outside the lock, one drainer at a time. */
    private void drain() {
        if (wip.getAndIncrement() != 0) return;
        int missed = 1;
        do {
            Object next;
            while ((next = nextDelivery()) != null) {
                if (next instanceof byte[] chunk) {
                    sink.emit(chunk);
                } else if (next == COMPLETE) {
                    sink.complete();
                } else {
                    ((Runnable) next).run();
                }
            }
            missed = wip.addAndGet(-missed);
        } while (missed != 0);
    }

    /**
     * The next thing to hand to Mutiny: a chunk or COMPLETE for the SSE sink, or a one-off signal (the stream can
     * start, the run failed, the whole body is ready) as a Runnable; null when there is nothing deliverable.
     */
    private Object nextDelivery() {
        synchronized (this) {
            if (cancelled) return null;
            if (streaming) {
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
            if (resultEmitter == null || startSignalled) return null;
            UniEmitter<? super byte[]> e = resultEmitter;
            if (failure != null) {
                startSignalled = true;
                OpenAiException f = failure;
                return (Runnable) () -> e.fail(f);
            }
            if (result != null) {
                startSignalled = true;
                byte[] body = result;
                return (Runnable) () -> e.complete(body);
            }
            return null;
        }
    }

    /** One router call and what it has produced so far. */
    private final class Choice implements GenerationListener {
        final int index;
        final ChoiceDecoder decoder;
        final GenerationCall call = new GenerationCall(this);
        final AtomicBoolean paused = new AtomicBoolean();
        final StringBuilder text = new StringBuilder();
        final List<LogprobEntry> logprobs;
        boolean begun;
        String finishReason;
        int completionTokens;

        Choice(int index, ChoiceDecoder decoder, boolean collectLogprobs) {
            this.index = index;
            this.decoder = decoder;
            this.logprobs = collectLogprobs ? new ArrayList<>() : null;
        }

        @Override
        public void onResponse(GenerateResponse response) {
            GenerationRun.this.onResponse(this, response);
        }

        @Override
        public void onError(Throwable error) {
            GenerationRun.this.onError(this, error);
        }

        @Override
        public void onCompleted() {
            GenerationRun.this.onCompleted(this);
        }
    }
}
