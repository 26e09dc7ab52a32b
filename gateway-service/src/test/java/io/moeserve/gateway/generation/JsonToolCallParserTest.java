package io.moeserve.gateway.generation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.gateway.generation.JsonToolCallParser.Family;
import io.moeserve.gateway.openai.ToolCallDelta;
import io.moeserve.proto.router.v1.FinishReason;
import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.tokenizer.HfTokenizer;
import io.moeserve.tokenizer.synthetic.SyntheticTokenizerBuilder;
import io.moeserve.tokenizer.synthetic.TokenizerFormat;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Mistral's {@code [TOOL_CALLS]} and Llama 3.x's JSON calls on scripted text, fed whole, cut in two at every
 * character and one character at a time, and with the marker as its own (special, so textless) token: calls parse
 * the same however they are cut, and output that does not parse is content as written.
 */
class JsonToolCallParserTest {
    private static final int MARKER_ID = 5;

    private record Parsed(String content, String toolCalls, boolean calledTool) {}

    private static final class Recorder implements ChatOutputParser.Sink {
        final StringBuilder content = new StringBuilder();
        final StringBuilder calls = new StringBuilder();

        @Override
        public void reasoning(String text) {
            throw new AssertionError("no reasoning in these formats: " + text);
        }

        @Override
        public void content(String text) {
            content.append(text);
        }

        @Override
        public void toolCall(String name) {
            if (!calls.isEmpty()) calls.append(')');
            calls.append(name).append('(');
        }

        @Override
        public void arguments(String text) {
            calls.append(text);
        }
    }

    /** Pieces of text, each its own token; a null piece is the marker's token (id 5, no text). */
    private static Parsed parse(Family family, List<String> pieces) {
        Recorder r = new Recorder();
        JsonToolCallParser parser = new JsonToolCallParser(family, MARKER_ID, r);
        for (String piece : pieces) {
            if (piece == null) {
                parser.accept(MARKER_ID, "");
            } else {
                parser.accept(100, piece);
            }
        }
        parser.finish();
        return new Parsed(r.content.toString(), r.calls.isEmpty() ? "" : r.calls + ")", parser.calledTool());
    }

    private static void assertParses(Parsed expected, Family family, String output) {
        assertEquals(expected, parse(family, List.of(output)), "whole");
        for (int cut = 1; cut < output.length(); cut++) {
            assertEquals(expected, parse(family, List.of(output.substring(0, cut), output.substring(cut))), "cut at " + cut);
        }
        assertEquals(expected, parse(family, output.codePoints().mapToObj(Character::toString).toList()), "by character");
        String marker = family.marker;
        int at = output.indexOf(marker);
        if (at >= 0) {
            List<String> asToken = new ArrayList<>();
            asToken.add(output.substring(0, at));
            asToken.add(null);
            asToken.add(output.substring(at + marker.length()));
            assertEquals(expected, parse(family, asToken), "marker as its token");
        }
    }

    @Test
    void mistralCallsAfterTheMarkerAreToolCallsAndTextBeforeIsContent() {
        assertParses(new Parsed("", "get_weather({\"city\":\"Paris\",\"unit\":\"c\"})", true), Family.MISTRAL,
                "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}]");
        assertParses(new Parsed("Let me check.", "a({\"x\":[1,2]})b({})", true), Family.MISTRAL,
                "Let me check. [TOOL_CALLS] [{\"name\": \"a\", \"arguments\": {\"x\": [1, 2]}}, {\"name\": \"b\"}]");
        assertParses(new Parsed("", "a({\"k\":\"v\"})", true), Family.MISTRAL,
                "[TOOL_CALLS]{\"name\": \"a\", \"arguments\": \"{\\\"k\\\": \\\"v\\\"}\"}");
        // As Mixtral-8x22B-Instruct's template writes a call back (function|tojson, then its 9-character id),
        // so as the model learned to write them.
        assertParses(new Parsed("", "get_weather({\"city\":\"Paris\"})", true), Family.MISTRAL,
                "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\", "
                        + "\"id\": \"abcDEF123\"}]");
    }

    @Test
    void mistralTextThatOnlyLooksLikeTheMarkerIsContent() {
        assertParses(new Parsed("Use [TOOL or [TOOL_CALL] here\n", "", false), Family.MISTRAL,
                "Use [TOOL or [TOOL_CALL] here\n");
    }

    @Test
    void malformedMistralCallsAreContentAsWritten() {
        for (String body : List.of("[{\"name\": \"a\", \"arguments\": {\"x\": 1}", "[]", "[{\"arguments\": {}}]",
                "[{\"name\": \"a\", \"arguments\": [1]}]", "[{\"name\": \"a\"}] and more", "")) {
            assertParses(new Parsed("Hi [TOOL_CALLS]" + body, "", false), Family.MISTRAL, "Hi [TOOL_CALLS]" + body);
        }
    }

    @Test
    void llamaJsonAnswersAreToolCalls() {
        assertParses(new Parsed("", "get_weather({\"city\":\"Paris\"})", true), Family.LLAMA3_JSON,
                "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}");
        assertParses(new Parsed("", "a({\"x\":1})b({})", true), Family.LLAMA3_JSON,
                "\n<|python_tag|>{\"name\": \"a\", \"parameters\": {\"x\": 1}}; {\"name\": \"b\", \"arguments\": {}}");
    }

    @Test
    void llamaTextAndJsonAfterTextAreContent() {
        assertParses(new Parsed("The answer is {\"name\": \"a\", \"parameters\": {}}", "", false), Family.LLAMA3_JSON,
                "The answer is {\"name\": \"a\", \"parameters\": {}}");
        assertParses(new Parsed("<|python", "", false), Family.LLAMA3_JSON, "<|python");
    }

    @Test
    void malformedLlamaCallsAreContentAsWritten() {
        for (String output : List.of("{\"name\": \"a\", \"parameters\": {\"x\": 1}", "{\"city\": \"Paris\"}",
                "{\"name\": \"a\", \"parameters\": {}} trailing", "{\"name\": \"a\", \"parameters\": {}};",
                "<|python_tag|>brave_search.call(query=\"x\")")) {
            assertParses(new Parsed(output, "", false), Family.LLAMA3_JSON, output);
        }
    }

    /**
     * Through ChoiceDecoder on a tokenizer where {@code [TOOL_CALLS]} is a special token, as in Mistral's: the
     * detokenizer skips its text, so the parser sees it only by id; one token per router message, ending on eos.
     */
    @Test
    void theMarkerAsASpecialTokenBecomesToolCallsWithFinishReasonToolCalls(@TempDir Path dir) throws IOException {
        List<String> special = List.of("<s>", "</s>", "[TOOL_CALLS]");
        SyntheticTokenizerBuilder.write(dir, 1000, new TokenizerFormat(special, "<s>", "</s>", "</s>",
                "{% for m in messages %}{{ m.content }}{% endfor %}"));
        try (HfTokenizer tokenizer = HfTokenizer.load(dir)) {
            int eos = tokenizer.tokenId("</s>").orElseThrow();
            OutputFormat format = JsonToolCallParser.Format.of(Family.MISTRAL, tokenizer);
            int[] prompt = tokenizer.encode("<s>Weather in Paris?", false);
            ChoiceDecoder decoder = new ChoiceDecoder(tokenizer, prompt, List.of(), new int[] {eos}, false, format, "call_0_");
            int[] ids = tokenizer.encode("Checking. [TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": "
                    + "{\"city\": \"Paris\"}}]</s>", false);
            assertTrue(Arrays.stream(ids).anyMatch(id -> id == tokenizer.tokenId("[TOOL_CALLS]").orElseThrow()));
            StringBuilder content = new StringBuilder();
            List<ToolCallDelta> calls = new ArrayList<>();
            String finish = null;
            for (int i = 0; i < ids.length; i++) {
                GenerateResponse.Builder m = GenerateResponse.newBuilder().addTokenIds(ids[i]);
                if (i == ids.length - 1) m.setFinishReason(FinishReason.FINISH_REASON_STOP);
                ChoiceDecoder.Step step = decoder.accept(m.build());
                content.append(step.text());
                calls.addAll(step.toolCalls());
                finish = step.finishReason();
            }
            assertEquals("Checking.", content.toString());
            assertEquals(List.of(new ToolCallDelta(0, "call_0_0", "get_weather", "{\"city\":\"Paris\"}")), calls);
            assertEquals("tool_calls", finish);
        }
    }
}
