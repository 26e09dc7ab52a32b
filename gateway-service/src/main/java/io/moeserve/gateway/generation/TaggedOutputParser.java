package io.moeserve.gateway.generation;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moeserve.tokenizer.HfTokenizer;
import java.util.Arrays;

/**
 * Splits output whose structure is written as text markers into reasoning, content and tool calls: Qwen3's and
 * Qwen2.5's Hermes-style {@code <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>} and DeepSeek-V3's
 * {@code <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{...}\n```<｜tool▁call▁end｜>
 * ...<｜tool▁calls▁end｜>}, both with DeepSeek-R1-style {@code <think>...</think>} reasoning.
 *
 * <p>Unlike harmony's, these markers are ordinary added tokens (special=false in both tokenizers), so they reach
 * the parser as text, and a model may split them over tokens or write them from single characters; the parser
 * therefore matches text, never ids. It streams: content and reasoning go out as they come, except a tail that
 * could be the start of a marker, held back until the next text decides it. Whitespace next to a marker belongs
 * to the markup ("\n\n" after {@code </think>}, "\n" before {@code <tool_call>}) and is dropped; other whitespace is
 * kept. A tool call is held whole until its end marker and then checked: its JSON must parse (a name and object
 * arguments), else the call, markers and all, is content as the model wrote it. So a call's arguments go out in
 * one piece, after its name; the price of never sending a client a call that turns out malformed.
 *
 * <p>Reasoning, as vLLM's qwen3 and deepseek_r1 reasoning parsers read it: {@code <think>} at the start of the
 * output (whitespace before it aside) opens a block that {@code </think>} closes; when the chat template already
 * wrote {@code <think>} at the end of the prompt (Qwen3's thinking-only models, DeepSeek-R1), the output starts
 * inside the block. A block never closed (generation cut short) is all reasoning. {@code <think>} later in the
 * output is content, so a model can talk about the tag. With reasoning off, think blocks are content.
 *
 * <p>One instance per choice; not thread-safe. It keeps one growing buffer for held-back text and calls.
 */
final class TaggedOutputParser implements ChatOutputParser {
    static final String THINK = "<think>";
    static final String THINK_END = "</think>";
    static final String QWEN_CALL = "<tool_call>";
    static final String QWEN_CALL_END = "</tool_call>";
    static final String DEEPSEEK_CALLS = "<｜tool▁calls▁begin｜>";
    static final String DEEPSEEK_CALLS_END = "<｜tool▁calls▁end｜>";
    static final String DEEPSEEK_CALL = "<｜tool▁call▁begin｜>";
    static final String DEEPSEEK_CALL_END = "<｜tool▁call▁end｜>";
    static final String DEEPSEEK_SEP = "<｜tool▁sep｜>";
    /** Prompt tokens decoded to see whether the template left a think block open. */
    private static final int PROMPT_TAIL_TOKENS = 8;
    private static final String[] IN_THINK = {THINK_END};
    private static final String[] IN_SECTION = {DEEPSEEK_CALL, DEEPSEEK_CALLS_END};
    private static final String[] QWEN_TEXT = {QWEN_CALL};
    private static final String[] QWEN_START = {THINK, QWEN_CALL};
    private static final String[] DEEPSEEK_TEXT = {DEEPSEEK_CALLS};
    private static final String[] DEEPSEEK_START = {THINK, DEEPSEEK_CALLS};
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    /** The output formats written as text markers. */
    enum Family { QWEN, DEEPSEEK }

    /**
     * @param reasoning whether think blocks go to reasoning_content (else they are content)
     */
    record Format(Family family, boolean reasoning) implements OutputFormat {
        @Override
        public ChatOutputParser parser(Sink sink, HfTokenizer tokenizer, int[] promptIds) {
            return new TaggedOutputParser(family, reasoning, reasoning && opensThink(tokenizer, promptIds), sink);
        }
    }

    private enum State { TEXT, THINK, CALL, SECTION }

    private final Family family;
    private final boolean reasoning;
    private final Sink sink;
    private final StringBuilder pending = new StringBuilder();
    private State state;
    /** Whitespace at the start of what follows is markup (a marker came just before). */
    private boolean trimLeading;
    /** Whether a think block may still open: nothing but whitespace has been written yet. */
    private boolean thinkMayOpen;
    private int calls;

    TaggedOutputParser(Family family, boolean reasoning, boolean insideThink, Sink sink) {
        this.family = family;
        this.reasoning = reasoning;
        this.sink = sink;
        this.state = insideThink ? State.THINK : State.TEXT;
        this.trimLeading = insideThink;
        this.thinkMayOpen = reasoning && !insideThink;
    }

    /** Whether the prompt ends in an open {@code <think>} (the template put it there; the output continues it). */
    static boolean opensThink(HfTokenizer tokenizer, int[] promptIds) {
        int[] tail = Arrays.copyOfRange(promptIds, Math.max(0, promptIds.length - PROMPT_TAIL_TOKENS), promptIds.length);
        return tokenizer.decode(tail, false).strip().endsWith(THINK);
    }

    @Override
    public void accept(int id, String text) {
        text(text);
    }

    @Override
    public void text(String text) {
        if (text.isEmpty()) return;
        pending.append(text);
        process(false);
    }

    @Override
    public void finish() {
        process(true);
    }

    @Override
    public boolean calledTool() {
        return calls > 0;
    }

    private void process(boolean end) {
        while (!pending.isEmpty()) {
            if (state == State.CALL) {
                String close = family == Family.QWEN ? QWEN_CALL_END : DEEPSEEK_CALL_END;
                int at = pending.indexOf(close);
                if (at < 0) {
                    if (end) {
                        // Cut short: the call as written is content.
                        emitContent((family == Family.QWEN ? QWEN_CALL : DEEPSEEK_CALL) + pending);
                        pending.setLength(0);
                    }
                    return;
                }
                String body = pending.substring(0, at);
                pending.delete(0, at + close.length());
                endCall(body, close);
                continue;
            }
            int markerAt = -1;
            String marker = null;
            for (String m : markers()) {
                int at = pending.indexOf(m);
                if (at >= 0 && (markerAt < 0 || at < markerAt)) {
                    markerAt = at;
                    marker = m;
                }
            }
            if (THINK.equals(marker) && !isBlank(markerAt)) {
                thinkMayOpen = false; // text came first: this <think> is content
                continue;
            }
            if (marker != null) {
                emit(pending.substring(0, markerAt).stripTrailing());
                pending.delete(0, markerAt + marker.length());
                enter(marker);
                continue;
            }
            if (end) {
                emit(pending.toString());
                pending.setLength(0);
                return;
            }
            int keep = heldBack();
            emit(pending.substring(0, pending.length() - keep));
            pending.delete(0, pending.length() - keep);
            return;
        }
    }

    /** The markers that change the current state. */
    private String[] markers() {
        return switch (state) {
            case THINK -> IN_THINK;
            case SECTION -> IN_SECTION;
            default -> family == Family.QWEN ? (thinkMayOpen ? QWEN_START : QWEN_TEXT)
                    : (thinkMayOpen ? DEEPSEEK_START : DEEPSEEK_TEXT);
        };
    }

    private void enter(String marker) {
        trimLeading = true;
        thinkMayOpen = false;
        switch (marker) {
            case THINK -> state = State.THINK;
            case THINK_END, DEEPSEEK_CALLS_END -> state = State.TEXT;
            case DEEPSEEK_CALLS -> state = State.SECTION;
            default -> state = State.CALL;
        }
    }

    /**
     * How much of the pending text's end to hold: the longest part that could begin a marker, and the whitespace
     * before it (markup if the marker comes).
     */
    private int heldBack() {
        int keep = 0;
        for (String m : markers()) {
            for (int k = Math.min(m.length() - 1, pending.length()); k > keep; k--) {
                if (endsWithStartOf(m, k)) {
                    keep = k;
                    break;
                }
            }
        }
        while (keep < pending.length() && Character.isWhitespace(pending.charAt(pending.length() - keep - 1))) keep++;
        return keep;
    }

    private boolean isBlank(int end) {
        for (int i = 0; i < end; i++) {
            if (!Character.isWhitespace(pending.charAt(i))) return false;
        }
        return true;
    }

    /** Whether the pending text ends with the first {@code k} characters of {@code marker}. */
    private boolean endsWithStartOf(String marker, int k) {
        int from = pending.length() - k;
        for (int i = 0; i < k; i++) {
            if (pending.charAt(from + i) != marker.charAt(i)) return false;
        }
        return true;
    }

    /** Text of the current streaming state, without the whitespace that follows a marker. */
    private void emit(String text) {
        if (trimLeading) {
            text = text.stripLeading();
            if (text.isEmpty()) return;
            trimLeading = false;
        }
        if (text.isEmpty()) return;
        if (state == State.THINK) {
            sink.reasoning(text);
        } else {
            emitContent(text);
        }
    }

    private void emitContent(String text) {
        if (!text.isBlank()) thinkMayOpen = false;
        trimLeading = false;
        sink.content(text);
    }

    private void endCall(String body, String close) {
        String[] call = family == Family.QWEN ? qwenCall(body) : deepSeekCall(body);
        if (call == null) {
            emitContent((family == Family.QWEN ? QWEN_CALL : DEEPSEEK_CALL) + body + close);
        } else {
            calls++;
            sink.toolCall(call[0]);
            sink.arguments(call[1]);
        }
        state = family == Family.QWEN ? State.TEXT : State.SECTION;
        trimLeading = true;
    }

    /** {"name": NAME, "arguments": {...}} as {name, arguments JSON}; null when malformed. */
    private static String[] qwenCall(String body) {
        JsonNode call = parse(body);
        if (call == null || !call.isObject() || !call.path("name").isTextual() || call.get("name").asText().isBlank()) {
            return null;
        }
        JsonNode arguments = call.get("arguments");
        String json;
        if (arguments == null || arguments.isNull()) {
            json = "{}";
        } else if (arguments.isObject()) {
            json = arguments.toString();
        } else if (arguments.isTextual() && parse(arguments.asText()) instanceof JsonNode n && n.isObject()) {
            json = arguments.asText(); // arguments as JSON text, as some fine-tunes write them
        } else {
            return null;
        }
        return new String[] {call.get("name").asText(), json};
    }

    /**
     * DeepSeek-V3's {@code TYPE<｜tool▁sep｜>NAME\n```json\nARGS\n```} as {name, arguments}, or V3.1's {@code
     * NAME<｜tool▁sep｜>ARGS}; null when malformed. The arguments go out as the model wrote them, once they parse
     * as a JSON object.
     */
    private static String[] deepSeekCall(String body) {
        int sep = body.indexOf(DEEPSEEK_SEP);
        if (sep < 0) return null;
        String before = body.substring(0, sep).strip();
        String after = body.substring(sep + DEEPSEEK_SEP.length());
        String name;
        String arguments;
        int fence = after.indexOf("```");
        int newline = after.indexOf('\n');
        if (fence >= 0 && newline >= 0 && newline < fence) {
            name = after.substring(0, newline).strip();
            String fenced = after.substring(fence + 3).strip();
            if (fenced.startsWith("json")) fenced = fenced.substring(4);
            if (!fenced.endsWith("```")) return null;
            arguments = fenced.substring(0, fenced.length() - 3).strip();
        } else {
            name = before;
            arguments = after.strip();
        }
        if (name.isEmpty() || name.contains("\n")) return null;
        JsonNode parsed = parse(arguments);
        if (parsed == null || !parsed.isObject()) return null;
        return new String[] {name, arguments};
    }

    private static JsonNode parse(String json) {
        if (json.isBlank()) return null;
        try {
            return JSON.readTree(json);
        } catch (JsonProcessingException e) {
            return null; // malformed output is content
        }
    }
}
