package io.moeserve.gateway.generation;

import io.grpc.Status;
import io.moeserve.gateway.GatewayMetrics;
import io.moeserve.gateway.ServedModel;
import io.moeserve.gateway.openai.GenerationOptions;
import io.moeserve.gateway.openai.OpenAiException;
import io.moeserve.gateway.openai.StructuredOutput;
import io.moeserve.gateway.router.GenerationCall;
import io.moeserve.gateway.router.GenerationListener;
import io.moeserve.gateway.router.RouterClient;
import io.moeserve.gateway.router.RouterErrors;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.proto.router.v1.SamplingParameters;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.jboss.resteasy.reactive.RestMulti;

/**
 * One completion request in flight: its n router Generate streams (n × prompts), assembled into what the client
 * gets, an SSE stream ({@link StreamingRun}) or one JSON body ({@link NonStreamingRun}). Built by a resource
 * through {@link #respond}, used once.
 */
public abstract sealed class GenerationRun permits StreamingRun, NonStreamingRun {
    /*
     * Shape. Each choice is one router call whose messages go through its ChoiceDecoder (detokenizing, stop
     * strings, logprobs). This class holds what both kinds of response share: starting the calls, decoding each
     * message, counting choices as they begin and finish, failing, cancelling, and the drain loop that hands
     * results to Mutiny. A subclass says what a decoded step becomes (an SSE chunk, or text kept for the body),
     * what a failure looks like to the client, when to ask the router for the next message (flow control), and
     * what there is to deliver; those hooks are listed together below. Both kinds of response come out of the
     * same decoder steps, so they carry the same text.
     *
     * Cancellation. If the client goes away (RESTEasy cancels our Uni or Multi when the connection closes), or a
     * stop string matches, the router call is cancelled through gRPC, which ends the router's sequence and
     * frees its KV cache. When one choice fails, the other choices' calls are cancelled. A call that has
     * finished is never cancelled; errors that come back after we cancelled are ignored.
     *
     * Router failures: retry and migration. A choice whose router goes away (UNAVAILABLE: killed, unreachable,
     * draining; or CANCELLED when we did not cancel) is started again on a router it has not tried, up to
     * plan.attempts calls. Before its first token this is a plain retry, invisible to the client (a stream commits
     * only once every choice has begun). After it, with plan.migration, the new router is sent the prompt followed
     * by every token this choice has received, the received ones marked as output (router.proto's
     * resumed_output_tokens: penalties count them, a seeded sampler skips their draws), and max_new_tokens less
     * them. The decoder is the same one, holding whatever text the detokenizer and the stop matcher held back, so
     * the next token's text follows on as if nothing happened: nothing is sent twice, nothing is lost, and under
     * greedy decoding (or a seed) the output is the uninterrupted one. Messages the dead router had sent but we
     * had not received are simply generated again. Each attempt has its own GenerationCall; events from an
     * earlier one are ignored.
     *
     * Threads and order. gRPC delivers each call's messages serially, but different choices on different
     * threads, and the HTTP side requests and cancels from the event loop. All mutable state, here and in the
     * subclasses, is guarded by one lock, the run itself; the hooks that change it are called holding it.
     * Nothing is handed to Mutiny while holding it (emitters call subscribers inline, which may call back).
     * Instead, what is due is decided under the lock (nextDelivery) and handed over outside it by a drain loop
     * (the usual "work in progress" counter: one drainer at a time, others leave their work to it), which keeps
     * deliveries in order. gRPC requests and cancels also happen outside the lock.
     */

    final GenerationPlan plan;
    /** One per choice, in choice order; the array never changes, each Choice says what guards its state. */
    final Choice[] choices;
    private final RouterClient router;
    private final GatewayMetrics metrics;
    private final long startNanos = System.nanoTime();
    /** The drain loop's work-in-progress count: deliveries asked for and not yet looked at. */
    private final AtomicInteger wip = new AtomicInteger();

    // Guarded by this.
    private int awaitingFirst;
    private int running;
    private boolean launched;
    private boolean ended;
    private boolean cancelled;

    /** Completions' echo: per prompt, the text each of its choices begins with; null when not asked for. */
    private List<String> echo;

    GenerationRun(GenerationPlan plan, ServedModel model, RouterClient router, GatewayMetrics metrics) {
        this.plan = plan;
        this.router = router;
        this.metrics = metrics;
        this.choices = new Choice[plan.choiceCount()];
        boolean logprobs = plan.options().logprobs() >= 0;
        for (int c = 0; c < choices.length; c++) {
            choices[c] = new Choice(c, new ChoiceDecoder(model.tokenizer(), plan.promptOf(c), plan.options().stop(),
                    plan.endTokenIds(), logprobs, plan.output(), "call_" + plan.identity().id().substring(
                            plan.identity().id().indexOf('-') + 1) + "_" + c + "_"));
        }
        this.awaitingFirst = choices.length;
        this.running = choices.length;
    }

    /** The HTTP response of a new run, streamed or whole as the request asks; the run starts on subscription. */
    public static RestMulti<byte[]> respond(GenerationPlan plan, ServedModel model, RouterClient router,
                                            GatewayMetrics metrics) {
        return respond(plan, model, router, metrics, null);
    }

    /**
     * {@link #respond(GenerationPlan, ServedModel, RouterClient, GatewayMetrics)} with completions' {@code echo}: each
     * choice's text begins with its prompt's text, {@code echo.get(prompt)} (streamed: its first chunk carries it).
     */
    public static RestMulti<byte[]> respond(GenerationPlan plan, ServedModel model, RouterClient router,
                                            GatewayMetrics metrics, List<String> echo) {
        GenerationRun run = plan.options().stream()
                ? new StreamingRun(plan, model, router, metrics)
                : new NonStreamingRun(plan, model, router, metrics);
        run.echo = echo;
        return run.response();
    }

    /** The prompt text that begins choice {@code c}'s text (completions' echo); null for none. */
    final String echoOf(int c) {
        return echo == null ? null : echo.get(c / plan.options().n());
    }

    // ---- what the two kinds of response do differently ----

    /**
     * The run's bytes as a RestMulti, whose status and headers are decided only when the run has begun (or
     * failed, which goes through the exception mappers instead). Subscribing to it calls {@link #launch()}.
     *
     * <p>Why raw bytes: RESTEasy's own SSE support writes {@code data:} without the space OpenAI sends and has
     * no {@code [DONE]}; with no {@code @Produces}, a RestMulti of byte arrays is written as it is, chunk by chunk.
     */
    abstract RestMulti<byte[]> response();

    /**
     * Under the lock: what one decoded step adds to the response. {@code first}: the choice's first message;
     * {@link Choice#finishReason} and {@link Choice#completionTokens} are set when the step ends the choice.
     */
    abstract void accepted(Choice choice, ChoiceDecoder.Step step, boolean first);

    /**
     * Under the lock: every choice has finished, having generated {@code completionTokens} in all; the routers took
     * {@code cachedPromptTokens} of the prompts from their prefix caches (each prompt's first choice's figure: a prompt
     * counts once, as in prompt_tokens).
     */
    abstract void finished(int completionTokens, int cachedPromptTokens);

    /** Under the lock: the run has failed (once, and it has ended). */
    abstract void failed(OpenAiException e);

    /** Under the lock: the client went away and nothing more will be delivered; drop what is pending. */
    void discarded() {}

    /** Outside the lock: the choice's last message was handled and it wants the next one (flow control). */
    abstract void requestNext(Choice choice);

    /**
     * Under the lock, never once cancelled: the next thing to hand to Mutiny, or null when nothing is due. One-off
     * signals (the response can start, the run failed, the body is ready) are Runnables.
     */
    abstract Object nextDelivery();

    /** Outside the lock, by the one drainer, in order: hands over what {@link #nextDelivery()} returned. */
    abstract void deliver(Object next);

    // ---- the router calls ----

    /** Starts every choice's router call; called once, when the client subscribes. */
    final void launch() {
        synchronized (this) {
            if (ended) return;
            launched = true;
        }
        metrics.runStarted(plan.options().stream());
        GenerateRequest.Builder base = baseRequest();
        for (Choice choice : choices) {
            synchronized (this) {
                if (ended) return;
            }
            GenerateRequest.Builder request = base.clone()
                    .setRequestId(plan.identity().id() + "-" + choice.index)
                    .setMaxNewTokens(plan.maxNewTokensOf(choice.index));
            for (int id : plan.promptOf(choice.index)) request.addPromptTokenIds(id);
            if (plan.options().seed().isPresent()) {
                // seed + i for the i-th choice of a prompt: reproducible, yet not n copies of one answer.
                request.getSamplingBuilder().setSeed(plan.options().seed().getAsLong()
                        + choice.index % plan.options().n());
            }
            synchronized (this) {
                choice.request = request.build();
            }
            start(choice, choice.request, plan.timeout(), null);
        }
    }

    /**
     * Starts one attempt of a choice on a router it has not tried; fails the run with {@code previous} (or 503)
     * when there is none left. Outside the lock.
     */
    private void start(Choice choice, GenerateRequest request, Duration timeout, Throwable previous) {
        Attempt attempt;
        synchronized (this) {
            if (ended) return;
            attempt = choice.newAttempt();
        }
        boolean started;
        try {
            started = router.generate(request, timeout, attempt.call, choice.tried);
        } catch (RuntimeException e) {
            onError(choice, attempt, e);
            return;
        }
        if (!started) {
            // Every router has been tried: the last one's error is the answer.
            Throwable e = previous != null ? previous
                    : Status.UNAVAILABLE.withDescription("no router to send the generation to").asRuntimeException();
            synchronized (this) {
                if (ended || choice.decoder.finished() || choice.attempt != attempt) return;
                fail(RouterErrors.translate(e));
            }
            cancelCalls("another choice failed");
            drain();
        }
    }

    /** Under the lock: the choice's request for its next router, which resumes after what was received. */
    private GenerateRequest resumption(Choice choice) {
        int k = choice.received;
        if (k == 0) return choice.request;
        GenerateRequest.Builder b = choice.request.toBuilder()
                .setMaxNewTokens(choice.request.getMaxNewTokens() - k)
                .setResumedOutputTokens(k);
        for (int i = 0; i < k; i++) b.addPromptTokenIds(choice.receivedIds[i]);
        return b.build();
    }

    /** Whether the error says the router is gone or going, not that the request is wrong. */
    private static boolean routerLost(Throwable error) {
        Status.Code code = Status.fromThrowable(error).getCode();
        return code == Status.Code.UNAVAILABLE || code == Status.Code.CANCELLED;
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
                .setModelId(plan.identity().model())
                .setSampling(sampling)
                .setIgnoreEos(o.ignoreEos())
                .setLogprobs(o.logprobs() >= 0)
                .setTopLogprobs(Math.max(0, o.logprobs()))
                .setDeadlineUnixMillis(System.currentTimeMillis() + plan.timeout().toMillis());
        for (int id : o.stopTokenIds()) b.addStopTokenIds(id);
        o.skipThreshold().ifPresent(t -> b.setSkipThreshold((float) t));
        StructuredOutput structured = o.structuredOutput();
        if (structured != null) {
            b.setStructuredOutput(io.moeserve.proto.router.v1.StructuredOutput.newBuilder().setJsonSchema(structured.jsonSchema())
                    .setPrefix(structured.prefix()).setSuffix(structured.suffix()));
        }
        // A harmony turn ends at <|return|> or <|call|>, whether or not generation_config.json lists them (gpt-oss's
        // listed only <|return|> and <|endoftext|> until 2025-08-13).
        if (plan.output() != null) {
            for (int id : plan.output().turnEnds()) b.addStopTokenIds(id);
        }
        return b;
    }

    /**
     * Degraded mode: the (token, expert) pairs the router masked for every choice so far, for the
     * {@value #DEGRADED_HEADER} header and the stream's closing comment.
     */
    final synchronized long maskedExpertPairs() {
        long n = 0;
        for (Choice c : choices) n += c.maskedExpertPairs;
        return n;
    }

    /** Response header telling a client that the router masked experts for its request (degraded mode). */
    static final String DEGRADED_HEADER = "X-Moe-Degraded";

    /** The response's headers, with {@value #DEGRADED_HEADER} when the router masked experts so far. */
    final Map<String, List<String>> withDegraded(Map<String, List<String>> headers) {
        long masked = maskedExpertPairs();
        if (masked == 0) return headers;
        Map<String, List<String>> h = new java.util.HashMap<>(headers);
        h.put(DEGRADED_HEADER, List.of("masked-experts=" + masked));
        return h;
    }

    // ---- router events ----

    private void onResponse(Choice choice, Attempt attempt, GenerateResponse message) {
        ChoiceDecoder.Step step;
        GenerationCall call = attempt.call;
        synchronized (this) {
            if (ended || choice.decoder.finished() || choice.attempt != attempt) return;
            choice.receive(message);
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
            call.cancel("stop sequence matched");
        } else if (step.finishReason() == null) {
            requestNext(choice);
        }
    }

    /** Under the lock: what one decoded message changes. */
    private void accept(Choice choice, ChoiceDecoder.Step step, GenerateResponse message) {
        boolean first = !choice.begun;
        choice.maskedExpertPairs = Math.max(choice.maskedExpertPairs, message.getMaskedExpertPairs());
        if (first) {
            choice.begun = true;
            awaitingFirst--;
            if (choice.index == 0) metrics.firstToken(System.nanoTime() - startNanos);
        }
        if (step.finishReason() != null) {
            choice.finishReason = step.finishReason();
            // The router's count includes the EOS token; after a stop string, what was received counts.
            boolean routerCount = !step.stopStringMatched() && message.hasUsage()
                    && message.getUsage().getCompletionTokens() > 0;
            // After a migration, the router counts only what it generated itself.
            choice.completionTokens = routerCount ? message.getUsage().getCompletionTokens() + choice.resumed
                    : choice.decoder.tokens();
            if (message.hasUsage()) choice.cachedPromptTokens = message.getUsage().getCachedPromptTokens();
        }
        accepted(choice, step, first);
        if (step.finishReason() != null && --running == 0) finish();
    }

    private void onError(Choice choice, Attempt attempt, Throwable error) {
        GenerateRequest again = null;
        synchronized (this) {
            if (ended || choice.decoder.finished() || choice.attempt != attempt) return;
            if (routerLost(error) && choice.attempts < plan.attempts() && (choice.received == 0 || plan.migration())) {
                again = resumption(choice);
                choice.resumed = choice.received;
                metrics.restarted(choice.received > 0);
            } else {
                fail(RouterErrors.translate(error));
            }
        }
        if (again != null) {
            long left = plan.timeout().toNanos() - (System.nanoTime() - startNanos);
            start(choice, again, Duration.ofNanos(Math.max(1_000_000, left)), error);
            return;
        }
        cancelCalls("another choice failed");
        drain();
    }

    private void onCompleted(Choice choice, Attempt attempt) {
        synchronized (this) {
            if (ended || choice.decoder.finished() || choice.attempt != attempt) return;
            fail(OpenAiException.server(500, null, "The router ended the generation without a finish reason."));
        }
        cancelCalls("another choice failed");
        drain();
    }

    /** Under the lock: whether every choice has had its first message. */
    final boolean allBegun() {
        return awaitingFirst == 0;
    }

    /** Under the lock: every choice has finished. */
    private void finish() {
        ended = true;
        int completionTokens = 0;
        for (Choice c : choices) completionTokens += c.completionTokens;
        metrics.runFinished(plan.promptTokens(), completionTokens);
        // Each prompt once, as prompt_tokens counts it: its first choice's figure (a later choice of the same prompt
        // finds the blocks the first one computed, which says nothing about the request's own prompt).
        int cached = 0;
        for (int c = 0; c < choices.length; c += plan.options().n()) cached += Math.min(choices[c].cachedPromptTokens, plan.promptOf(c).length);
        finished(completionTokens, cached);
    }

    /** Under the lock: the run fails; how the client learns of it is the subclass's to say. */
    private void fail(OpenAiException e) {
        ended = true;
        metrics.runFailed(e.status());
        failed(e);
    }

    /** The client went away: cancel everything, send nothing more. */
    final void cancel(String reason) {
        synchronized (this) {
            if (cancelled) return;
            cancelled = true;
            if (!ended && launched) metrics.runCancelled();
            ended = true;
            discarded();
        }
        cancelCalls(reason);
    }

    private void cancelCalls(String reason) {
        for (Choice c : choices) {
            GenerationCall call;
            synchronized (this) {
                call = c.decoder.finished() || c.attempt == null ? null : c.attempt.call;
            }
            if (call != null) call.cancel(reason);
        }
    }

    // ---- delivery ----

    /** Delivers what is due, in order, outside the lock, one drainer at a time. */
    final void drain() {
        if (wip.getAndIncrement() != 0) return;
        int missed = 1;
        do {
            Object next;
            while ((next = nextDue()) != null) deliver(next);
            missed = wip.addAndGet(-missed);
        } while (missed != 0);
    }

    private synchronized Object nextDue() {
        return cancelled ? null : nextDelivery();
    }

    /** One choice: its router calls, one at a time, and what the run knows of them. */
    final class Choice {
        final int index;
        /** Guarded by the run (GenerationRun.this): the decoder is not thread-safe. */
        final ChoiceDecoder decoder;
        /** The routers tried so far; touched only by the thread starting an attempt (one at a time). */
        final Set<String> tried = new HashSet<>();

        // Guarded by GenerationRun.this.
        /** The current attempt; its call is the one to request from and cancel. */
        volatile Attempt attempt;
        int attempts;
        /** The first attempt's request. */
        GenerateRequest request;
        /** Every token id received from the routers, in order (what a migration resends). */
        int[] receivedIds = new int[16];
        int received;
        /** Tokens the current router was given as already generated (resumed_output_tokens). */
        int resumed;
        boolean begun;
        String finishReason;
        int completionTokens;
        /** Prompt tokens the (last) router took from its prefix cache, from its final usage. */
        int cachedPromptTokens;
        /** Degraded mode: the router's running count of this choice's masked (token, expert) pairs. */
        long maskedExpertPairs;

        Choice(int index, ChoiceDecoder decoder) {
            this.index = index;
            this.decoder = decoder;
        }

        /** The current attempt's call; null before the first. Read outside the lock by flow control. */
        GenerationCall call() {
            Attempt a = attempt;
            return a == null ? null : a.call;
        }

        /** Under the lock. */
        Attempt newAttempt() {
            attempts++;
            attempt = new Attempt(this);
            return attempt;
        }

        /** Under the lock: keeps the message's token ids for a migration. */
        void receive(GenerateResponse message) {
            int n = message.getTokenIdsCount();
            if (received + n > receivedIds.length) receivedIds = Arrays.copyOf(receivedIds, Math.max(2 * receivedIds.length, received + n));
            for (int i = 0; i < n; i++) receivedIds[received++] = message.getTokenIds(i);
        }
    }

    /** One router call of a choice. */
    final class Attempt implements GenerationListener {
        final Choice choice;
        final GenerationCall call = new GenerationCall(this);

        Attempt(Choice choice) {
            this.choice = choice;
        }

        @Override
        public void onResponse(GenerateResponse response) {
            GenerationRun.this.onResponse(choice, this, response);
        }

        @Override
        public void onError(Throwable error) {
            GenerationRun.this.onError(choice, this, error);
        }

        @Override
        public void onCompleted() {
            GenerationRun.this.onCompleted(choice, this);
        }
    }
}
