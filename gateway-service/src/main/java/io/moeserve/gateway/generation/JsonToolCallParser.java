package io.moeserve.gateway.generation;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moeserve.tokenizer.HfTokenizer;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads tool calls that a model writes as plain JSON to the end of its turn: Mistral's (Mixtral-8x22B-Instruct's
 * template) {@code [TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]}, and Llama 3.1/3.2/3.3's JSON based tool
 * calling, {@code {"name": ..., "parameters": {...}}} as the whole answer, possibly after {@code <|python_tag|>},
 * several joined by {@code ;} (what vLLM's llama3_json parser accepts).
 *
 * <p>Neither format closes its calls: they run to the end of the turn. So once the output has turned into calls
 * (Mistral's marker anywhere, content before it streaming as content; Llama's {@code {} or {@code <|python_tag|>}
 * as the first thing written), everything after is held until generation ends and then checked as a whole. Calls
 * that parse go out, each name then its arguments in one piece; anything else is content as written, marker and
 * all, so a client is never sent a call that turns out malformed. Llama's check is only worth its cost when the
 * request sent tools (plain JSON answers are common), which {@link Format#onlyWithTools()} tells the planner.
 *
 * <p>Both markers are special tokens in the official tokenizers, which the detokenizer skips, so the marker is
 * matched by its id when the tokenizer has it, and by its text as well for tokenizers that spell it out.
 *
 * <p>One instance per choice; not thread-safe.
 */
final class JsonToolCallParser implements ChatOutputParser {
    static final String MISTRAL_CALLS = "[TOOL_CALLS]";
    static final String PYTHON_TAG = "<|python_tag|>";
    private static final ObjectMapper JSON = new ObjectMapper();

    /** The formats that write their calls as JSON up to the end of the turn. */
    enum Family {
        MISTRAL(MISTRAL_CALLS), LLAMA3_JSON(PYTHON_TAG);

        final String marker;

        Family(String marker) {
            this.marker = marker;
        }
    }

    /** @param markerId the marker's token id in the served tokenizer, -1 when it has none */
    record Format(Family family, int markerId) implements OutputFormat {
        static Format of(Family family, HfTokenizer tokenizer) {
            return new Format(family, tokenizer.tokenId(family.marker).orElse(-1));
        }

        @Override
        public ChatOutputParser parser(Sink sink, HfTokenizer tokenizer, int[] promptIds) {
            return new JsonToolCallParser(family, markerId, sink);
        }

        @Override
        public boolean onlyWithTools() {
            return family == Family.LLAMA3_JSON;
        }
    }

    private final Family family;
    private final int markerId;
    private final Sink sink;
    /** Text not yet decided: a tail that could begin the marker, or, once in calls, everything since it. */
    private final StringBuilder pending = new StringBuilder();
    private boolean inCalls;
    /** What began the calls as written (the marker, or nothing for Llama's bare JSON), for content if malformed. */
    private String opened = "";
    /** Whether only whitespace has been written so far (Llama's calls must come first). */
    private boolean atStart = true;
    private int calls;

    JsonToolCallParser(Family family, int markerId, Sink sink) {
        this.family = family;
        this.markerId = markerId;
        this.sink = sink;
    }

    @Override
    public void accept(int id, String text) {
        if (id >= 0 && id == markerId && !inCalls && (family == Family.MISTRAL || atStart && isBlank(pending))) {
            open(pending.length(), 0, family.marker); // the marker as its token
            return;
        }
        text(text);
    }

    @Override
    public void text(String text) {
        if (text.isEmpty()) return;
        pending.append(text);
        if (!inCalls) scan();
    }

    @Override
    public void finish() {
        if (inCalls) {
            List<String[]> parsed = family == Family.MISTRAL ? mistralCalls(pending.toString())
                    : llamaCalls(pending.toString());
            if (parsed == null) {
                content(opened + pending);
            } else {
                for (String[] call : parsed) {
                    calls++;
                    sink.toolCall(call[0]);
                    sink.arguments(call[1]);
                }
            }
        } else {
            content(pending.toString());
        }
        pending.setLength(0);
    }

    @Override
    public boolean calledTool() {
        return calls > 0;
    }

    /** Outside calls: finds where they begin, streaming what comes before and holding what might begin them. */
    private void scan() {
        if (family == Family.MISTRAL) {
            int at = pending.indexOf(MISTRAL_CALLS);
            if (at >= 0) {
                open(at, MISTRAL_CALLS.length(), MISTRAL_CALLS);
                return;
            }
            int keep = startOfMarkerAtEnd(MISTRAL_CALLS);
            while (keep < pending.length() && Character.isWhitespace(pending.charAt(pending.length() - keep - 1))) keep++;
            content(pending.substring(0, pending.length() - keep));
            pending.delete(0, pending.length() - keep);
            return;
        }
        if (!atStart) {
            content(pending.toString());
            pending.setLength(0);
            return;
        }
        int first = 0;
        while (first < pending.length() && Character.isWhitespace(pending.charAt(first))) first++;
        if (first == pending.length()) return; // only whitespace yet: undecided
        String rest = pending.substring(first);
        if (rest.startsWith("{")) {
            open(first, 0, "");
        } else if (rest.startsWith(PYTHON_TAG)) {
            open(first, PYTHON_TAG.length(), PYTHON_TAG);
        } else if (!PYTHON_TAG.startsWith(rest)) {
            atStart = false;
            content(pending.toString());
            pending.setLength(0);
        }
    }

    /**
     * The calls begin at {@code at}, after a marker written as {@code length} characters of text there; {@code
     * opened} is the marker as written (content again if the calls turn out malformed).
     */
    private void open(int at, int length, String opened) {
        String before = pending.substring(0, at);
        String stripped = before.stripTrailing();
        content(stripped);
        pending.delete(0, at + length);
        this.opened = before.substring(stripped.length()) + opened; // markup whitespace, unless content after all
        inCalls = true;
    }

    private void content(String text) {
        if (text.isEmpty()) return;
        if (!text.isBlank()) atStart = false;
        sink.content(text);
    }

    /** The length of the longest end of the pending text that is a proper beginning of {@code marker}. */
    private int startOfMarkerAtEnd(String marker) {
        for (int k = Math.min(marker.length() - 1, pending.length()); k > 0; k--) {
            if (pending.lastIndexOf(marker.substring(0, k)) == pending.length() - k) return k;
        }
        return 0;
    }

    private static boolean isBlank(CharSequence s) {
        for (int i = 0; i < s.length(); i++) {
            if (!Character.isWhitespace(s.charAt(i))) return false;
        }
        return true;
    }

    /** A JSON array of calls (or one call object) with "arguments"; null when anything is malformed. */
    static List<String[]> mistralCalls(String body) {
        List<JsonNode> values = jsonValues(body, false);
        if (values == null || values.size() != 1) return null;
        JsonNode root = values.getFirst();
        List<String[]> out = new ArrayList<>();
        if (root.isArray()) {
            if (root.isEmpty()) return null;
            for (JsonNode call : root) {
                String[] c = call(call, "arguments");
                if (c == null) return null;
                out.add(c);
            }
        } else {
            String[] c = call(root, "arguments");
            if (c == null) return null;
            out.add(c);
        }
        return out;
    }

    /** Call objects joined by {@code ;}, each with "parameters" (or "arguments"); null when anything is malformed. */
    static List<String[]> llamaCalls(String body) {
        List<JsonNode> values = jsonValues(body, true);
        if (values == null || values.isEmpty()) return null;
        List<String[]> out = new ArrayList<>();
        for (JsonNode call : values) {
            String[] c = call(call, call.has("parameters") ? "parameters" : "arguments");
            if (c == null) return null;
            out.add(c);
        }
        return out;
    }

    /** {name, arguments JSON} of one call object; null unless the name is text and the arguments an object. */
    private static String[] call(JsonNode call, String argumentsField) {
        if (!call.isObject() || !call.path("name").isTextual() || call.get("name").asText().isBlank()) return null;
        JsonNode arguments = call.get(argumentsField);
        if (arguments == null || arguments.isNull()) return new String[] {call.get("name").asText(), "{}"};
        if (arguments.isObject()) return new String[] {call.get("name").asText(), arguments.toString()};
        if (arguments.isTextual()) {
            // Arguments as JSON text, as some fine-tunes write them.
            List<JsonNode> inner = jsonValues(arguments.asText(), false);
            if (inner != null && inner.size() == 1 && inner.getFirst().isObject()) {
                return new String[] {call.get("name").asText(), inner.getFirst().toString()};
            }
        }
        return null;
    }

    /** The JSON values the text holds one after another (separated by {@code ;} if allowed); null if malformed. */
    private static List<JsonNode> jsonValues(String text, boolean semicolons) {
        List<JsonNode> values = new ArrayList<>();
        int at = 0;
        while (true) {
            while (at < text.length() && Character.isWhitespace(text.charAt(at))) at++;
            if (at == text.length()) return values;
            if (!values.isEmpty() && semicolons) {
                if (text.charAt(at) != ';') return null;
                at++;
                while (at < text.length() && Character.isWhitespace(text.charAt(at))) at++;
                if (at == text.length()) return null;
            }
            if (!values.isEmpty() && !semicolons) return null;
            try (JsonParser parser = JSON.getFactory().createParser(text.substring(at))) {
                JsonNode value = JSON.readTree(parser);
                if (value == null || value.isMissingNode()) return null;
                values.add(value);
                at += (int) parser.currentLocation().getCharOffset();
            } catch (IOException e) {
                return null; // malformed output is content
            }
        }
    }
}
