package io.moeserve.gateway.generation;

import io.moeserve.tokenizer.HfTokenizer;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * Splits a gpt-oss completion in OpenAI's harmony format into reasoning, content and tool calls, token by token.
 *
 * <p>Harmony frames each message as {@code <|start|>ROLE HEADER<|message|>BODY<|end|>}, where the header names the
 * channel ({@code <|channel|>analysis}, {@code commentary} or {@code final}), optionally the recipient
 * ({@code to=functions.NAME}, before or after the channel) and the body's content type ({@code <|constrain|>json}
 * or a bare {@code json}). The chat template ends the prompt with {@code <|start|>assistant}, so a completion opens
 * inside a header. A turn ends with {@code <|return|>} (answered) or {@code <|call|>} (calling a tool); {@code
 * <|end|>} only ends one message, another may follow. Where the body goes, as OpenAI's harmony guide and vLLM map
 * it onto the Chat Completions API:
 * <ul>
 *   <li>a recipient {@code functions.NAME}: a tool call NAME whose arguments are the body;</li>
 *   <li>{@code analysis}: reasoning (reasoning_content);</li>
 *   <li>{@code final}, and {@code commentary} without a recipient (the preamble the guide says users may see
 *       before a tool call), and anything else: content.</li>
 * </ul>
 *
 * <p>Only the header is held back (until {@code <|message|>}); bodies go out as they come, so streaming sends
 * reasoning and arguments token by token. Special tokens are recognised by id, never by text, so a model that
 * writes "<|channel|>" as plain text writes plain text. Malformed output degrades to content and never fails:
 * text outside any message, a header cut short by an end token or by the end of generation, or one longer than
 * {@link #MAX_HEADER_CHARS} (a model that does not speak harmony at all) is content, as it came.
 *
 * <p>One instance per choice; not thread-safe. It keeps one StringBuilder for the header and allocates nothing
 * per token beyond what its sink does with the text.
 */
final class HarmonyParser implements ChatOutputParser {
    /** Longer than any real header ("assistant to=functions.NAME<|channel|>commentary json"), short of real text. */
    static final int MAX_HEADER_CHARS = 256;
    private static final String FUNCTIONS = "functions.";

    /** The ids of harmony's special tokens in a tokenizer. */
    record Tokens(int start, int channel, int message, int end, int returnToken, int call, int constrain)
            implements OutputFormat {

        private static final List<String> NAMES = List.of("<|start|>", "<|channel|>", "<|message|>", "<|end|>",
                "<|return|>", "<|call|>", "<|constrain|>");

        /** The tokenizer's harmony tokens, if it has all of them. */
        static Optional<Tokens> of(HfTokenizer tokenizer) {
            int[] ids = new int[NAMES.size()];
            for (int i = 0; i < ids.length; i++) {
                OptionalInt id = tokenizer.tokenId(NAMES.get(i));
                if (id.isEmpty()) return Optional.empty();
                ids[i] = id.getAsInt();
            }
            return Optional.of(new Tokens(ids[0], ids[1], ids[2], ids[3], ids[4], ids[5], ids[6]));
        }

        /** The harmony tokens the tokenizer does not have. */
        static List<String> missing(HfTokenizer tokenizer) {
            return NAMES.stream().filter(name -> tokenizer.tokenId(name).isEmpty()).toList();
        }

        @Override
        public ChatOutputParser parser(Sink sink, HfTokenizer tokenizer, int[] promptIds) {
            return new HarmonyParser(this, sink);
        }

        /** The turn's end tokens, which generation must stop at. */
        @Override
        public int[] turnEnds() {
            return new int[] {returnToken, call};
        }
    }

    private enum State { HEADER, BODY, OUTSIDE }

    private enum Target { REASONING, CONTENT, TOOL_CALL }

    private final Tokens tokens;
    private final Sink sink;
    private final StringBuilder header = new StringBuilder();
    private State state = State.HEADER;
    private Target target;
    /** Where the channel name starts in the header; -1 before {@code <|channel|>}. */
    private int channelAt = -1;
    private boolean calledTool;

    HarmonyParser(Tokens tokens, Sink sink) {
        this.tokens = tokens;
        this.sink = sink;
    }

    /** Whether the output ended a tool call with {@code <|call|>} (finish_reason tool_calls). */
    @Override
    public boolean calledTool() {
        return calledTool;
    }

    /**
     * One generated token: its id, and the text the detokenizer released with it (empty for special tokens, and
     * for tokens that hold part of a character).
     */
    @Override
    public void accept(int id, String text) {
        if (id == tokens.start()) {
            endHeaderAsContent();
            state = State.HEADER;
        } else if (id == tokens.channel() && state == State.HEADER) {
            header.append(' '); // "to=functions.f<|channel|>commentary": the recipient ends here
            channelAt = header.length();
        } else if (id == tokens.constrain() && state == State.HEADER) {
            header.append(' ');
        } else if (id == tokens.message() && state == State.HEADER) {
            beginBody();
        } else if (id == tokens.end() || id == tokens.returnToken() || id == tokens.call()) {
            if (id == tokens.call() && state == State.BODY && target == Target.TOOL_CALL) calledTool = true;
            endHeaderAsContent();
            state = State.OUTSIDE;
        } else {
            text(text);
        }
    }

    /** Text released without a token of its own (the detokenizer's flush at the end). */
    @Override
    public void text(String text) {
        if (text.isEmpty()) return;
        switch (state) {
            case HEADER -> {
                header.append(text);
                if (header.length() > MAX_HEADER_CHARS) {
                    endHeaderAsContent();
                    state = State.BODY;
                    target = Target.CONTENT;
                }
            }
            case BODY -> {
                switch (target) {
                    case REASONING -> sink.reasoning(text);
                    case CONTENT -> sink.content(text);
                    case TOOL_CALL -> sink.arguments(text);
                }
            }
            case OUTSIDE -> sink.content(text);
        }
    }

    /** The end of generation: a header never closed is content. */
    @Override
    public void finish() {
        endHeaderAsContent();
        state = State.OUTSIDE;
    }

    private void beginBody() {
        String recipient = recipient();
        String channel = channel();
        if (recipient != null && recipient.startsWith(FUNCTIONS) && recipient.length() > FUNCTIONS.length()) {
            target = Target.TOOL_CALL;
            sink.toolCall(recipient.substring(FUNCTIONS.length()));
        } else {
            target = "analysis".equals(channel) ? Target.REASONING : Target.CONTENT;
        }
        header.setLength(0);
        channelAt = -1;
        state = State.BODY;
    }

    /** {@code to=NAME} anywhere in the header: NAME up to the next space (or the end). */
    private String recipient() {
        int at = header.indexOf("to=");
        while (at > 0 && !Character.isWhitespace(header.charAt(at - 1))) at = header.indexOf("to=", at + 1);
        if (at < 0) return null;
        int end = at + 3;
        while (end < header.length() && !Character.isWhitespace(header.charAt(end))) end++;
        return header.substring(at + 3, end);
    }

    /** The first word after {@code <|channel|>}. */
    private String channel() {
        if (channelAt < 0) return null;
        int from = channelAt;
        while (from < header.length() && Character.isWhitespace(header.charAt(from))) from++;
        int end = from;
        while (end < header.length() && !Character.isWhitespace(header.charAt(end))) end++;
        return header.substring(from, end);
    }

    /**
     * A header that did not reach {@code <|message|>} is not a header: its text, if any, is content. The role
     * that {@code <|start|>} opens ("assistant") is part of it, as harmony spells it.
     */
    private void endHeaderAsContent() {
        if (state == State.HEADER && !header.isEmpty()) sink.content(header.toString());
        header.setLength(0);
        channelAt = -1;
    }
}
