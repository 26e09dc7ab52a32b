package io.moeserve.gateway.generation;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The harmony parser on scripted output: special tokens by id, text in pieces split at every character, so that
 * whatever the tokenization and however the stream is cut, reasoning, content and tool calls come out the same.
 */
class HarmonyParserTest {
    private static final HarmonyParser.Tokens TOKENS = new HarmonyParser.Tokens(1, 2, 3, 4, 5, 6, 7);
    private static final Pattern SPECIAL = Pattern.compile("<\\|(start|channel|message|end|return|call|constrain)\\|>");

    private record Parsed(String reasoning, String content, String toolCalls, boolean calledTool) {}

    /** Feeds the output with every text run cut after {@code cut} characters (0: whole runs). */
    private static Parsed parse(String output, int cut) {
        RecordingSink r = new RecordingSink();
        HarmonyParser parser = new HarmonyParser(TOKENS, r);
        Matcher m = SPECIAL.matcher(output);
        int at = 0;
        while (true) {
            boolean found = m.find();
            String text = output.substring(at, found ? m.start() : output.length());
            if (cut > 0 && text.length() > cut) {
                parser.accept(100, text.substring(0, cut));
                for (int i = cut; i < text.length(); i++) parser.accept(100, text.substring(i, i + 1));
            } else if (!text.isEmpty()) {
                parser.accept(100, text);
            }
            if (!found) break;
            parser.accept(id(m.group(1)), "");
            at = m.end();
        }
        parser.finish();
        return new Parsed(r.reasoning.toString(), r.content.toString(), r.toolCalls(), parser.calledTool());
    }

    private static int id(String name) {
        return switch (name) {
            case "start" -> TOKENS.start();
            case "channel" -> TOKENS.channel();
            case "message" -> TOKENS.message();
            case "end" -> TOKENS.end();
            case "return" -> TOKENS.returnToken();
            case "call" -> TOKENS.call();
            default -> TOKENS.constrain();
        };
    }

    /** The same result for whole runs and for every cut, down to one character per token. */
    private static void assertParses(Parsed expected, String output) {
        for (int cut = 0; cut <= output.length(); cut++) assertEquals(expected, parse(output, cut), "cut " + cut);
    }

    @Test
    void analysisThenFinal() {
        assertParses(new Parsed("The user greets; greet back.", "Hello! How can I help?", "", false),
                "<|channel|>analysis<|message|>The user greets; greet back.<|end|>"
                        + "<|start|>assistant<|channel|>final<|message|>Hello! How can I help?<|return|>");
    }

    @Test
    void toolCallWithRecipientAfterTheChannel() {
        assertParses(new Parsed("Need weather.", "", "get_weather({\"location\": \"Paris\"})", true),
                "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary "
                        + "to=functions.get_weather <|constrain|>json<|message|>{\"location\": \"Paris\"}<|call|>");
    }

    @Test
    void toolCallWithRecipientBeforeTheChannel() {
        assertParses(new Parsed("", "", "get_weather({\"location\": \"Oslo\"})", true),
                " to=functions.get_weather<|channel|>commentary json<|message|>{\"location\": \"Oslo\"}<|call|>");
    }

    @Test
    void commentaryWithoutRecipientIsContent() {
        // The preamble OpenAI's harmony guide describes: visible to the user, before the tool call.
        assertParses(new Parsed("", "Let me check.", "lookup({})", true),
                "<|channel|>commentary<|message|>Let me check.<|end|>"
                        + "<|start|>assistant to=functions.lookup<|channel|>commentary json<|message|>{}<|call|>");
    }

    @Test
    void finalEndedByEndOrByTheEndOfGeneration() {
        assertParses(new Parsed("", "4", "", false), "<|channel|>final<|message|>4<|end|>");
        assertParses(new Parsed("hmm", "", "", false), "<|channel|>analysis<|message|>hmm");
    }

    @Test
    void malformedOutputIsContent() {
        assertParses(new Parsed("", "just text, no harmony", "", false), "just text, no harmony");
        // A header cut short by an end token; text outside any message, framing tokens there included, is kept.
        assertParses(new Parsed("", "<broken>strayother 42", "", false),
                "<broken><|end|>stray<|channel|>other<|message|> 42<|return|>");
        assertParses(new Parsed("", "x", "", false), "<|channel|>unknown<|message|>x<|return|>");
        // A header longer than any real one is text, as it came, and so is what follows in that message.
        String text = "x".repeat(HarmonyParser.MAX_HEADER_CHARS + 10);
        assertEquals(new Parsed("", text + "finaly", "", false), parse(text + "<|channel|>final<|message|>y", 0));
        // <|call|> outside a tool call's body ends the turn, but called nothing.
        assertParses(new Parsed("", "a", "", false), "<|channel|>final<|message|>a<|call|>");
        // A recipient that is not a function goes by its channel.
        assertParses(new Parsed("print(1)", "", "", false),
                "<|channel|>analysis to=python code<|message|>print(1)<|call|>");
    }

    @Test
    void specialTokensAreRecognisedByIdNeverByText() {
        RecordingSink r = new RecordingSink();
        HarmonyParser parser = new HarmonyParser(TOKENS, r);
        parser.accept(TOKENS.channel(), "");
        parser.accept(100, "final");
        parser.accept(TOKENS.message(), "");
        parser.accept(100, "<|end|> is how it ends");
        parser.accept(TOKENS.returnToken(), "");
        parser.finish();
        assertEquals("<|end|> is how it ends", r.content.toString());
    }
}
