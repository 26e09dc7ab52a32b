package io.moeserve.gateway.generation;

import io.moeserve.gateway.openai.LogprobEntry;
import io.moeserve.gateway.openai.ToolCallDelta;
import io.moeserve.proto.router.v1.FinishReason;
import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.tokenizer.HfTokenizer;
import io.moeserve.tokenizer.IncrementalDetokenizer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;

/**
 * Turns one choice's router messages into what the client sees: text (detokenized, cut at stop strings, without
 * the end-of-sequence token), the log-probabilities that go with that text, and the finish reason. Streaming and
 * non-streaming responses are both built from its steps, so they carry the same text. With a {@link
 * ChatOutputParser} (gpt-oss's harmony, Qwen's or DeepSeek's tool calls and think blocks), the text is split into
 * reasoning, content and tool calls first; stop strings then apply to the content, and each token's logprobs go out
 * with the step of its token. Not thread-safe.
 */
final class ChoiceDecoder implements ChatOutputParser.Sink {

    /**
     * What one router message adds: content to send, reasoning and tool-call fragments (parsed output only, else empty),
     * logprobs released with it, and the end if it came.
     */
    record Step(String text, String reasoning, List<ToolCallDelta> toolCalls, List<LogprobEntry> logprobs,
                String finishReason, boolean stopStringMatched) {
        Step(String text, List<LogprobEntry> logprobs, String finishReason, boolean stopStringMatched) {
            this(text, "", List.of(), logprobs, finishReason, stopStringMatched);
        }

        boolean isEmpty() {
            return text.isEmpty() && reasoning.isEmpty() && toolCalls.isEmpty() && logprobs.isEmpty()
                    && finishReason == null;
        }
    }

    private final IncrementalDetokenizer detokenizer;
    private final StopSequenceMatcher stops;
    private final int[] endTokenIds;
    private final boolean logprobs;
    /** Entries whose text has not been released yet (held back by the stop matcher or the detokenizer). */
    private final ArrayDeque<LogprobEntry> held = new ArrayDeque<>();
    private final StringBuilder out = new StringBuilder();
    /** Null unless the output is parsed (harmony, Qwen, DeepSeek). */
    private final ChatOutputParser parser;
    private final StringBuilder reasoning = new StringBuilder();
    private final List<ToolCallDelta> toolCalls = new ArrayList<>();
    /** Tool calls begun so far; the current one's argument text of this step. */
    private int toolCallCount;
    private final StringBuilder arguments = new StringBuilder();
    private final String toolCallIdPrefix;
    private int tokens;
    private int fedCodePoints;
    private int releasedCodePoints;
    private boolean finished;

    /**
     * @param endTokenIds the model's end-of-sequence ids and the request's stop_token_ids: when the router ends
     *                    with STOP on one of them, that token is not text
     */
    ChoiceDecoder(HfTokenizer tokenizer, int[] promptIds, List<String> stopStrings, int[] endTokenIds,
                  boolean logprobs) {
        this(tokenizer, promptIds, stopStrings, endTokenIds, logprobs, null, null);
    }

    /**
     * @param output           how the output is parsed into reasoning, content and tool calls; null for text
     * @param toolCallIdPrefix tool call i of this choice gets the id prefix + i (unique per request and choice)
     */
    ChoiceDecoder(HfTokenizer tokenizer, int[] promptIds, List<String> stopStrings, int[] endTokenIds,
                  boolean logprobs, OutputFormat output, String toolCallIdPrefix) {
        this.detokenizer = new IncrementalDetokenizer(tokenizer, true, promptIds);
        this.stops = new StopSequenceMatcher(stopStrings);
        this.endTokenIds = endTokenIds;
        this.logprobs = logprobs;
        this.parser = output == null ? null : output.parser(this, tokenizer, promptIds);
        this.toolCallIdPrefix = toolCallIdPrefix;
    }

    /** Generated tokens received so far (up to the stop string's, once one matched). */
    int tokens() {
        return tokens;
    }

    boolean finished() {
        return finished;
    }

    Step accept(GenerateResponse message) {
        if (finished) return new Step("", List.of(), null, false);
        if (parser != null) return acceptParsed(message);
        out.setLength(0);
        List<LogprobEntry> released = logprobs ? new ArrayList<>(message.getTokenIdsCount()) : List.of();
        FinishReason reason = message.getFinishReason();
        boolean last = reason == FinishReason.FINISH_REASON_STOP || reason == FinishReason.FINISH_REASON_LENGTH;
        int count = message.getTokenIdsCount();
        for (int i = 0; i < count; i++) {
            int id = message.getTokenIds(i);
            tokens++;
            if (last && i == count - 1 && reason == FinishReason.FINISH_REASON_STOP && isEndToken(id)) break;
            if (logprobs && i < message.getLogprobsCount()) held.add(new LogprobEntry(message.getLogprobs(i), fedCodePoints));
            feed(detokenizer.add(id), released);
            if (stops.matched()) {
                finished = true;
                return new Step(out.toString(), released, "stop", true);
            }
        }
        if (!last) return new Step(out.toString(), released, null, false);
        feed(detokenizer.flush(), released);
        if (stops.matched()) {
            finished = true;
            return new Step(out.toString(), released, "stop", true);
        }
        String rest = stops.flush();
        out.append(rest);
        releasedCodePoints += rest.codePointCount(0, rest.length());
        if (logprobs) released.addAll(held);
        held.clear();
        finished = true;
        return new Step(out.toString(), released, reason == FinishReason.FINISH_REASON_STOP ? "stop" : "length", false);
    }

    /** {@link #accept} for parsed output: every token goes through the parser, which calls the Sink methods. */
    private Step acceptParsed(GenerateResponse message) {
        out.setLength(0);
        reasoning.setLength(0);
        toolCalls.clear();
        List<LogprobEntry> released = logprobs ? new ArrayList<>(message.getTokenIdsCount()) : List.of();
        FinishReason reason = message.getFinishReason();
        boolean last = reason == FinishReason.FINISH_REASON_STOP || reason == FinishReason.FINISH_REASON_LENGTH;
        int count = message.getTokenIdsCount();
        for (int i = 0; i < count; i++) {
            int id = message.getTokenIds(i);
            tokens++;
            if (last && i == count - 1 && reason == FinishReason.FINISH_REASON_STOP && isEndToken(id)) {
                // <|return|> or <|call|> (harmony's parser needs it), <|im_end|>: neither the text nor the
                // logprobs have it, as the end token of plain text
                parser.accept(id, "");
                break;
            }
            if (logprobs && i < message.getLogprobsCount()) released.add(new LogprobEntry(message.getLogprobs(i), 0));
            parser.accept(id, detokenizer.add(id));
            if (stops.matched()) return parsedStep(released, "stop", true);
        }
        if (!last) return parsedStep(released, null, false);
        parser.text(detokenizer.flush());
        parser.finish();
        if (stops.matched()) return parsedStep(released, "stop", true);
        out.append(stops.flush());
        // A call cut short by length is content, but calls before it were made: the reason stays length.
        boolean stopped = reason == FinishReason.FINISH_REASON_STOP;
        String finish = stopped && parser.calledTool() ? "tool_calls" : stopped ? "stop" : "length";
        return parsedStep(released, finish, false);
    }

    private Step parsedStep(List<LogprobEntry> released, String finishReason, boolean stopStringMatched) {
        flushArguments();
        if (finishReason != null) finished = true;
        return new Step(out.toString(), reasoning.toString(), List.copyOf(toolCalls), released, finishReason,
                stopStringMatched);
    }

    @Override
    public void content(String text) {
        if (stops.matched()) return;
        out.append(stops.push(text));
    }

    @Override
    public void reasoning(String text) {
        if (!stops.matched()) reasoning.append(text);
    }

    @Override
    public void toolCall(String name) {
        if (stops.matched()) return;
        flushArguments();
        int index = toolCallCount++;
        toolCalls.add(new ToolCallDelta(index, toolCallIdPrefix + index, name, ""));
    }

    @Override
    public void arguments(String text) {
        if (!stops.matched()) arguments.append(text);
    }

    /** This step's argument text of the current call, as one fragment (merged into its first piece if new). */
    private void flushArguments() {
        if (arguments.isEmpty()) return;
        int index = toolCallCount - 1;
        int last = toolCalls.size() - 1;
        if (last >= 0 && toolCalls.get(last).index() == index) {
            ToolCallDelta first = toolCalls.get(last);
            toolCalls.set(last, new ToolCallDelta(index, first.id(), first.name(), first.arguments() + arguments));
        } else {
            toolCalls.add(new ToolCallDelta(index, null, null, arguments.toString()));
        }
        arguments.setLength(0);
    }

    private void feed(String piece, List<LogprobEntry> released) {
        if (piece.isEmpty()) return;
        fedCodePoints += piece.codePointCount(0, piece.length());
        String text = stops.push(piece);
        out.append(text);
        releasedCodePoints += text.codePointCount(0, text.length());
        // A token goes out with the first character of its text; after a stop string, the rest never goes out.
        while (!held.isEmpty() && held.peekFirst().textOffset() < releasedCodePoints) released.add(held.pollFirst());
        if (stops.matched()) held.clear();
    }

    private boolean isEndToken(int id) {
        for (int end : endTokenIds) {
            if (end == id) return true;
        }
        return false;
    }
}
