package io.moeserve.gateway.generation;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.moeserve.gateway.generation.TaggedOutputParser.Family;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Qwen's and DeepSeek's text-marker output on scripted text, fed whole, in two pieces cut at every character, and
 * one character at a time, so that however the tokenizer and the stream cut the markers, reasoning, content and
 * tool calls come out the same. Each piece's sink calls are checked too: nothing that could still be a marker
 * leaks out as content before it is decided.
 */
class TaggedOutputParserTest {

    private record Parsed(String reasoning, String content, String toolCalls, boolean calledTool) {}

    private static Parsed parse(Family family, boolean reasoning, boolean insideThink, List<String> pieces) {
        RecordingSink r = new RecordingSink();
        TaggedOutputParser parser = new TaggedOutputParser(family, reasoning, insideThink, r);
        for (String piece : pieces) parser.accept(100, piece);
        parser.finish();
        return new Parsed(r.reasoning.toString(), r.content.toString(), r.toolCalls(), parser.calledTool());
    }

    /** The same result whole, cut in two at every character, and one character per token. */
    private static void assertParses(Parsed expected, Family family, boolean reasoning, boolean insideThink,
                                     String output) {
        assertEquals(expected, parse(family, reasoning, insideThink, List.of(output)), "whole");
        for (int cut = 1; cut < output.length(); cut++) {
            assertEquals(expected, parse(family, reasoning, insideThink,
                    List.of(output.substring(0, cut), output.substring(cut))), "cut at " + cut);
        }
        List<String> chars = output.codePoints().mapToObj(Character::toString).toList();
        assertEquals(expected, parse(family, reasoning, insideThink, chars), "one character at a time");
    }

    private static void assertQwen(Parsed expected, String output) {
        assertParses(expected, Family.QWEN, true, false, output);
    }

    private static void assertDeepSeek(Parsed expected, String output) {
        assertParses(expected, Family.DEEPSEEK, true, false, output);
    }

    @Test
    void qwen3ThinksThenCallsATool() {
        assertQwen(new Parsed("The user wants Paris's weather.", "",
                        "get_weather({\"location\":\"Paris\",\"unit\":\"celsius\"})", true),
                "<think>\nThe user wants Paris's weather.\n</think>\n\n<tool_call>\n"
                        + "{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\", \"unit\": \"celsius\"}}\n"
                        + "</tool_call>");
    }

    @Test
    void textBeforeAndBetweenSeveralCallsIsContent() {
        assertQwen(new Parsed("", "Let me check both.", "a({\"x\":1})b({})", true),
                "Let me check both.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}}\n</tool_call>\n"
                        + "<tool_call>\n{\"name\": \"b\", \"arguments\": {}}\n</tool_call>");
        // Text after a call is content too, and arguments written as JSON text pass as they are.
        assertQwen(new Parsed("", "Done.", "c({\"y\": \"z\"})", true),
                "<tool_call>{\"name\": \"c\", \"arguments\": \"{\\\"y\\\": \\\"z\\\"}\"}</tool_call>\nDone.");
    }

    @Test
    void anAnswerWithThinkingIsReasoningThenContent() {
        assertQwen(new Parsed("2 + 2 = 4.", "The answer is 4.", "", false),
                "<think>\n2 + 2 = 4.\n</think>\n\nThe answer is 4.");
        // enable_thinking=false: the template wrote the empty block; the output is the answer, whitespace kept.
        assertQwen(new Parsed("", "  Hi there!\n", "", false), "  Hi there!\n");
        // An empty think block, as Qwen3 writes with /no_think.
        assertQwen(new Parsed("", "Hi.", "", false), "<think>\n\n</think>\n\nHi.");
    }

    @Test
    void thePromptOpenedTheThinkBlock() {
        assertParses(new Parsed("Reason here.", "Answer.", "", false), Family.QWEN, true, true,
                "Reason here.\n</think>\n\nAnswer.");
        // Cut short inside it: all reasoning.
        assertParses(new Parsed("Still thinking", "", "", false), Family.QWEN, true, true, "Still thinking");
    }

    @Test
    void thinkLaterInTheOutputOrWithReasoningOffIsContent() {
        assertQwen(new Parsed("", "Use <think> tags.", "", false), "Use <think> tags.");
        assertParses(new Parsed("", "<think>\nhmm\n</think>\n\nHi", "", false), Family.QWEN, false, false,
                "<think>\nhmm\n</think>\n\nHi");
        // A think block never closed is reasoning (generation was cut short).
        assertQwen(new Parsed("I wonder", "", "", false), "<think>I wonder");
    }

    @Test
    void malformedQwenCallsAreContentAsWritten() {
        String broken = "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": }\n</tool_call>";
        assertQwen(new Parsed("", broken, "", false), broken);
        assertQwen(new Parsed("", "<tool_call>{\"arguments\": {}}</tool_call>", "", false),
                "<tool_call>{\"arguments\": {}}</tool_call>");
        assertQwen(new Parsed("", "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>", "", false),
                "<tool_call>{\"name\": \"f\", \"arguments\": [1]}</tool_call>");
        assertQwen(new Parsed("", "<tool_call>{\"name\": \"f\"} trailing</tool_call>", "", false),
                "<tool_call>{\"name\": \"f\"} trailing</tool_call>");
        // Cut short before </tool_call>: content, as written.
        assertQwen(new Parsed("", "<tool_call>\n{\"name\": \"f\", \"argu", "", false),
                "<tool_call>\n{\"name\": \"f\", \"argu");
        // A good call next to a broken one is still a call; no arguments means {}.
        assertQwen(new Parsed("", "<tool_call>nope</tool_call>", "g({})", true),
                "<tool_call>nope</tool_call>\n<tool_call>{\"name\": \"g\"}</tool_call>");
        // Text that only looks like the start of a marker goes out once it is decided.
        assertQwen(new Parsed("", "a <tool and <thin", "", false), "a <tool and <thin");
    }

    private static final String CALLS = TaggedOutputParser.DEEPSEEK_CALLS;
    private static final String CALLS_END = TaggedOutputParser.DEEPSEEK_CALLS_END;
    private static final String CALL = TaggedOutputParser.DEEPSEEK_CALL;
    private static final String CALL_END = TaggedOutputParser.DEEPSEEK_CALL_END;
    private static final String SEP = TaggedOutputParser.DEEPSEEK_SEP;

    @Test
    void deepSeekV3CallsAsItsTemplateWritesThem() {
        // The template's own spelling: function<｜tool▁sep｜>NAME\n```json\nARGS\n```, calls separated by \n.
        assertEquals("<｜tool▁calls▁begin｜>", CALLS);
        assertDeepSeek(new Parsed("", "Checking.", "get_weather({\"city\": \"Oslo\"})get_time({\"zone\": \"CET\"})", true),
                "Checking." + CALLS + CALL + "function" + SEP + "get_weather\n```json\n{\"city\": \"Oslo\"}\n```" + CALL_END
                        + "\n" + CALL + "function" + SEP + "get_time\n```json\n{\"zone\": \"CET\"}\n```" + CALL_END
                        + CALLS_END);
        // DeepSeek-V3.1's NAME<｜tool▁sep｜>ARGS, without type or fence.
        assertDeepSeek(new Parsed("", "", "f({\"a\": [1, 2]})", true),
                CALLS + CALL + "f" + SEP + "{\"a\": [1, 2]}" + CALL_END + CALLS_END);
    }

    @Test
    void deepSeekR1ThinksThenAnswers() {
        assertDeepSeek(new Parsed("Think about it.", "42", "", false), "<think>\nThink about it.\n</think>\n\n42");
        assertParses(new Parsed("Okay, so.", "42", "", false), Family.DEEPSEEK, true, true, "Okay, so.\n</think>\n\n42");
        assertDeepSeek(new Parsed("Plan.", "", "f({})", true),
                "<think>Plan.</think>" + CALLS + CALL + "function" + SEP + "f\n```json\n{}\n```" + CALL_END + CALLS_END);
    }

    @Test
    void malformedDeepSeekCallsAreContent() {
        String noSep = CALL + "function f\n```json\n{}\n```" + CALL_END;
        assertDeepSeek(new Parsed("", noSep, "", false), CALLS + noSep + CALLS_END);
        String badJson = CALL + "function" + SEP + "f\n```json\n{\"x\": \n```" + CALL_END;
        assertDeepSeek(new Parsed("", badJson, "", false), CALLS + badJson + CALLS_END);
        String unfenced = CALL + "function" + SEP + "f\n```json\n{}" + CALL_END;
        assertDeepSeek(new Parsed("", unfenced, "", false), CALLS + unfenced + CALLS_END);
        // Cut short inside a call: the call so far is content.
        assertDeepSeek(new Parsed("", CALL + "function" + SEP + "f\n```js", "", false),
                CALLS + CALL + "function" + SEP + "f\n```js");
        // Qwen's markers mean nothing to DeepSeek's parser, and the other way round.
        assertDeepSeek(new Parsed("", "<tool_call>{\"name\": \"f\"}</tool_call>", "", false),
                "<tool_call>{\"name\": \"f\"}</tool_call>");
        assertQwen(new Parsed("", CALLS + "x", "", false), CALLS + "x");
    }

    @Test
    void aMarkerPrefixIsHeldBackUntilDecided() {
        RecordingSink r = new RecordingSink();
        TaggedOutputParser parser = new TaggedOutputParser(Family.QWEN, true, false, r);
        parser.accept(1, "Sure.\n<tool");
        assertEquals("Sure.", r.content.toString(), "the newline and <tool wait");
        parser.accept(2, "_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>");
        assertEquals("Sure.", r.content.toString());
        assertEquals(List.of("f"), r.calls);
        parser.accept(3, "<tooth");
        assertEquals("Sure.<tooth", r.content.toString(), "decided: not a marker");
        parser.finish();
    }
}
