package io.moeserve.gateway.generation;

import io.moeserve.gateway.GatewayMetrics;
import io.moeserve.gateway.ServedModel;
import io.moeserve.gateway.openai.CompletionResponseWriter;
import io.moeserve.gateway.openai.LogprobEntry;
import io.moeserve.gateway.openai.OpenAiException;
import io.moeserve.gateway.openai.ToolCallDelta;
import io.moeserve.gateway.router.RouterClient;
import io.moeserve.tokenizer.TokenTexts;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.Uni;
import io.smallrye.mutiny.subscription.UniEmitter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.jboss.resteasy.reactive.RestMulti;

/**
 * A run whose response is one JSON body ({@code "stream": false}), written when every choice has finished. Nothing
 * is sent before, so any failure is the HTTP error. Every router message is requested as soon as the one before
 * it is handled: the body is held whole anyway.
 */
final class NonStreamingRun extends GenerationRun {
    private final TokenTexts texts;

    // Guarded by this.
    /** Per choice: its text and logprobs so far. */
    private final Output[] outputs;
    private UniEmitter<? super byte[]> emitter;
    private byte[] body;
    private OpenAiException failure;
    private boolean signalled;

    /** What one choice has produced so far. */
    private static final class Output {
        final StringBuilder text = new StringBuilder();
        /** Harmony only: the reasoning, and the tool calls whole (their pieces merged by index). */
        final StringBuilder reasoning = new StringBuilder();
        final List<ToolCallDelta> toolCalls = new ArrayList<>();
        /** Null when logprobs were not asked for. */
        final List<LogprobEntry> logprobs;

        Output(boolean logprobs) {
            this.logprobs = logprobs ? new ArrayList<>() : null;
        }
    }

    NonStreamingRun(GenerationPlan plan, ServedModel model, RouterClient router, GatewayMetrics metrics) {
        super(plan, model, router, metrics);
        this.texts = model.tokenTexts();
        this.outputs = new Output[choices.length];
        boolean logprobs = plan.options().logprobs() >= 0;
        for (int c = 0; c < outputs.length; c++) outputs[c] = new Output(logprobs);
    }

    @Override
    RestMulti<byte[]> response() {
        Map<String, List<String>> headers = Map.of(
                "Content-Type", List.of("application/json"),
                "X-Request-Id", List.of(plan.identity().id()));
        return RestMulti.fromUniResponse(result(), b -> Multi.createFrom().item(b), b -> withDegraded(headers), b -> 200);
    }

    /** The whole response body once every choice has finished. */
    private Uni<byte[]> result() {
        return Uni.createFrom().<byte[]>emitter(e -> {
            synchronized (this) {
                emitter = e;
            }
            launch();
        }).onCancellation().invoke(() -> cancel("client went away"));
    }

    @Override
    void accepted(Choice choice, ChoiceDecoder.Step step, boolean first) {
        Output out = outputs[choice.index];
        if (first && echoOf(choice.index) != null) out.text.append(echoOf(choice.index));
        out.text.append(step.text());
        out.reasoning.append(step.reasoning());
        for (ToolCallDelta piece : step.toolCalls()) {
            if (piece.index() < out.toolCalls.size()) {
                ToolCallDelta call = out.toolCalls.get(piece.index());
                out.toolCalls.set(piece.index(), new ToolCallDelta(call.index(), call.id(), call.name(),
                        call.arguments() + piece.arguments()));
            } else {
                out.toolCalls.add(piece); // a call's first piece: id and name
            }
        }
        if (out.logprobs != null) out.logprobs.addAll(step.logprobs());
    }

    @Override
    void finished(int completionTokens, int cachedPromptTokens) {
        List<CompletionResponseWriter.ChoiceResult> results = new ArrayList<>(choices.length);
        for (Choice c : choices) {
            Output out = outputs[c.index];
            // Left out when the model wrote no analysis.
            String reasoning = plan.output() == null || out.reasoning.isEmpty() ? null : out.reasoning.toString();
            results.add(new CompletionResponseWriter.ChoiceResult(c.index, out.text.toString(), out.logprobs,
                    c.finishReason, c.completionTokens, reasoning, List.copyOf(out.toolCalls)));
        }
        body = CompletionResponseWriter.write(plan.identity(), plan.promptTokens(), cachedPromptTokens, results, texts);
    }

    @Override
    void failed(OpenAiException e) {
        failure = e;
    }

    @Override
    void requestNext(Choice choice) {
        choice.call().requestNext();
    }

    /** The one signal: the body, or the failure. */
    @Override
    Object nextDelivery() {
        if (emitter == null || signalled) return null;
        UniEmitter<? super byte[]> e = emitter;
        if (failure != null) {
            signalled = true;
            OpenAiException f = failure;
            return (Runnable) () -> e.fail(f);
        }
        if (body != null) {
            signalled = true;
            byte[] b = body;
            return (Runnable) () -> e.complete(b);
        }
        return null;
    }

    @Override
    void deliver(Object next) {
        ((Runnable) next).run();
    }
}
