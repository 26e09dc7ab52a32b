package io.moeserve.gateway.generation;

import io.moeserve.gateway.openai.LogprobEntry;
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
 * non-streaming responses are both built from its steps, so they carry the same text. Not thread-safe.
 */
final class ChoiceDecoder {

    /** What one router message adds: text to send, logprobs released with it, and the end if it came. */
    record Step(String text, List<LogprobEntry> logprobs, String finishReason, boolean stopStringMatched) {
        boolean isEmpty() {
            return text.isEmpty() && logprobs.isEmpty() && finishReason == null;
        }
    }

    private final IncrementalDetokenizer detokenizer;
    private final StopSequenceMatcher stops;
    private final int[] endTokenIds;
    private final boolean logprobs;
    /** Entries whose text has not been released yet (held back by the stop matcher or the detokenizer). */
    private final ArrayDeque<LogprobEntry> held = new ArrayDeque<>();
    private final StringBuilder out = new StringBuilder();
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
        this.detokenizer = new IncrementalDetokenizer(tokenizer, true, promptIds);
        this.stops = new StopSequenceMatcher(stopStrings);
        this.endTokenIds = endTokenIds;
        this.logprobs = logprobs;
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
