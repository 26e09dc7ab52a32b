package io.moeserve.gateway.generation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.gateway.openai.LogprobEntry;
import io.moeserve.gateway.openai.ToolCallDelta;
import io.moeserve.proto.router.v1.FinishReason;
import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.proto.router.v1.TokenLogprob;
import io.moeserve.tokenizer.HfTokenizer;
import io.moeserve.tokenizer.synthetic.SyntheticTokenizerBuilder;
import io.moeserve.tokenizer.synthetic.TokenizerFormat;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * ChoiceDecoder's harmony path on real token ids (gpt-oss's special tokens in a synthetic tokenizer), below the
 * HTTP layer: however the router cuts the stream into messages, the choice says the same; tool call pieces merge
 * into one call per index; stop strings cut only the content; logprobs go out with their tokens.
 */
class ChoiceDecoderHarmonyTest {
    private static final String TOOL_CALL = "<|channel|>analysis<|message|>Need the weather in Paris.<|end|>"
            + "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>"
            + "{\"city\":\"Paris\",\"unit\":\"celsius\"}<|call|>";
    private static final String ANSWER = "<|channel|>analysis<|message|>It said sunny; say so.<|end|>"
            + "<|start|>assistant<|channel|>final<|message|>It is sunny in Paris, 24 °C.<|return|>";

    private static Path dir;
    private static HfTokenizer tokenizer;
    private static HarmonyParser.Tokens harmony;
    private static int[] endIds;
    private static int[] prompt;

    @BeforeAll
    static void tokenizer() throws IOException {
        dir = Files.createTempDirectory("choice-decoder-harmony");
        SyntheticTokenizerBuilder.write(dir, 1000, TokenizerFormat.harmony());
        tokenizer = HfTokenizer.load(dir);
        harmony = HarmonyParser.Tokens.of(tokenizer).orElseThrow();
        // generation_config.json's ids (<|return|>, <|endoftext|>, <|call|>), as the planner passes them.
        endIds = new int[] {harmony.returnToken(), tokenizer.tokenId("<|endoftext|>").orElseThrow(), harmony.call()};
        prompt = tokenizer.encode("<|start|>user<|message|>Weather in Paris?<|end|><|start|>assistant", false);
    }

    @AfterAll
    static void close() throws IOException {
        tokenizer.close();
        try (var files = Files.walk(dir)) {
            files.sorted((a, b) -> b.compareTo(a)).forEach(p -> p.toFile().delete());
        }
    }

    /** What a client puts together from a choice's steps. */
    private record Result(String content, String reasoning, List<ToolCallDelta> toolCalls, String finishReason,
                          List<Integer> logprobTokens) {}

    private static ChoiceDecoder decoder(List<String> stops, boolean logprobs, String idPrefix) {
        return new ChoiceDecoder(tokenizer, prompt, stops, endIds, logprobs, harmony, idPrefix);
    }

    private static int[] ids(String harmonyText) {
        return tokenizer.encode(harmonyText, false);
    }

    /** The ids as router messages of these sizes (the last message ends with STOP, or the given reason). */
    private static List<GenerateResponse> messages(int[] ids, int[] sizes, FinishReason reason) {
        List<GenerateResponse> out = new ArrayList<>();
        int at = 0;
        for (int s = 0; s < sizes.length; s++) {
            GenerateResponse.Builder m = GenerateResponse.newBuilder();
            for (int i = at; i < at + sizes[s]; i++) {
                m.addTokenIds(ids[i]);
                m.addLogprobs(TokenLogprob.newBuilder().setTokenId(ids[i]).setLogprob(-0.5f));
            }
            at += sizes[s];
            if (s == sizes.length - 1) m.setFinishReason(reason);
            out.add(m.build());
        }
        return out;
    }

    private static List<ChoiceDecoder.Step> steps(ChoiceDecoder decoder, List<GenerateResponse> messages) {
        List<ChoiceDecoder.Step> out = new ArrayList<>();
        for (GenerateResponse m : messages) {
            ChoiceDecoder.Step step = decoder.accept(m);
            out.add(step);
            if (step.finishReason() != null) break;
        }
        return out;
    }

    /** The steps as a client assembles them: text concatenated, tool call pieces merged by index. */
    private static Result assemble(List<ChoiceDecoder.Step> steps) {
        StringBuilder content = new StringBuilder();
        StringBuilder reasoning = new StringBuilder();
        List<ToolCallDelta> calls = new ArrayList<>();
        List<Integer> logprobTokens = new ArrayList<>();
        String finish = null;
        for (ChoiceDecoder.Step step : steps) {
            content.append(step.text());
            reasoning.append(step.reasoning());
            for (ToolCallDelta piece : step.toolCalls()) {
                if (piece.index() == calls.size()) {
                    assertNotNull(piece.id(), "a call's first piece has its id");
                    assertNotNull(piece.name(), "a call's first piece has its name");
                    calls.add(piece);
                } else {
                    assertNull(piece.id(), "later pieces only carry arguments");
                    assertNull(piece.name());
                    ToolCallDelta call = calls.get(piece.index());
                    calls.set(piece.index(), new ToolCallDelta(call.index(), call.id(), call.name(),
                            call.arguments() + piece.arguments()));
                }
            }
            for (LogprobEntry e : step.logprobs()) logprobTokens.add(e.logprob().getTokenId());
            if (step.finishReason() != null) finish = step.finishReason();
        }
        return new Result(content.toString(), reasoning.toString(), calls, finish, logprobTokens);
    }

    private static Result decode(String output, int[] sizes, List<String> stops) {
        return assemble(steps(decoder(stops, true, "call_t_0_"), messages(ids(output), sizes, FinishReason.FINISH_REASON_STOP)));
    }

    private static int[] whole(int n) {
        return new int[] {n};
    }

    private static int[] oneByOne(int n) {
        int[] sizes = new int[n];
        Arrays.fill(sizes, 1);
        return sizes;
    }

    @Test
    void aToolCallIsParsedAlike_wholeOneTokenPerMessageAndSplitAtEveryToken() {
        int n = ids(TOOL_CALL).length;
        Result expected = new Result("", "Need the weather in Paris.", List.of(new ToolCallDelta(0, "call_t_0_0",
                "get_weather", "{\"city\":\"Paris\",\"unit\":\"celsius\"}")), "tool_calls",
                Arrays.stream(ids(TOOL_CALL)).limit(n - 1).boxed().toList());
        assertEquals(expected, decode(TOOL_CALL, whole(n), List.of()));
        assertEquals(expected, decode(TOOL_CALL, oneByOne(n), List.of()));
        for (int k = 1; k < n; k++) assertEquals(expected, decode(TOOL_CALL, new int[] {k, n - k}, List.of()), "split at " + k);
    }

    @Test
    void anAnswerIsParsedAlikeHoweverTheStreamIsCut() {
        int n = ids(ANSWER).length;
        Result expected = decode(ANSWER, whole(n), List.of());
        assertEquals("It is sunny in Paris, 24 °C.", expected.content());
        assertEquals("It said sunny; say so.", expected.reasoning());
        assertEquals("stop", expected.finishReason());
        assertEquals(List.of(), expected.toolCalls());
        assertEquals(expected, decode(ANSWER, oneByOne(n), List.of()));
        for (int k = 1; k < n; k++) assertEquals(expected, decode(ANSWER, new int[] {k, n - k}, List.of()), "split at " + k);
    }

    @Test
    void argumentFragmentsOfOneMessageMergeAndTheIdAndNameComeFirst() {
        int n = ids(TOOL_CALL).length;
        List<ChoiceDecoder.Step> streamed = steps(decoder(List.of(), false, "call_s_0_"),
                messages(ids(TOOL_CALL), oneByOne(n), FinishReason.FINISH_REASON_STOP));
        List<ToolCallDelta> pieces = streamed.stream().flatMap(s -> s.toolCalls().stream()).toList();
        assertTrue(pieces.size() > 2, "one token per message streams the arguments in pieces: " + pieces);
        assertEquals(new ToolCallDelta(0, "call_s_0_0", "get_weather", ""), pieces.getFirst());
        for (ChoiceDecoder.Step s : streamed) assertTrue(s.toolCalls().size() <= 1, "one piece per step: " + s);

        List<ChoiceDecoder.Step> whole = steps(decoder(List.of(), false, "call_s_0_"),
                messages(ids(TOOL_CALL), whole(n), FinishReason.FINISH_REASON_STOP));
        assertEquals(List.of(new ToolCallDelta(0, "call_s_0_0", "get_weather", "{\"city\":\"Paris\",\"unit\":\"celsius\"}")),
                whole.getFirst().toolCalls(), "the call's first piece and its arguments in one message make one delta");
    }

    @Test
    void twoToolCallsInOneOutputAreTwoCalls() {
        // gpt-oss ends its turn at <|call|>, so a second call needs the first to end with <|end|>: not what it
        // writes, but read as two calls rather than lost.
        String output = "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|end|>"
                + "<|start|>assistant to=functions.get_time<|channel|>commentary json<|message|>{\"zone\":\"CET\"}<|call|>";
        int n = ids(output).length;
        Result expected = new Result("", "", List.of(
                new ToolCallDelta(0, "call_t_0_0", "get_weather", "{\"city\":\"Paris\"}"),
                new ToolCallDelta(1, "call_t_0_1", "get_time", "{\"zone\":\"CET\"}")), "tool_calls",
                Arrays.stream(ids(output)).limit(n - 1).boxed().toList());
        assertEquals(expected, decode(output, whole(n), List.of()));
        assertEquals(expected, decode(output, oneByOne(n), List.of()));
    }

    @Test
    void malformedOutputIsContentAndNeverAFailure() {
        assertEquals("just text", decode("just text", oneByOne(ids("just text").length), List.of()).content());
        // A header the length limit cut off: its text is content, as it came.
        String cut = "<|channel|>final to=";
        Result r = assemble(steps(decoder(List.of(), false, "c"), messages(ids(cut), oneByOne(ids(cut).length),
                FinishReason.FINISH_REASON_LENGTH)));
        assertEquals("final to=", r.content().strip());
        assertEquals(new Result(r.content(), "", List.of(), "length", List.of()), r);
        // Random ids, special tokens among them, cut anywhere: the choice ends with a reason and no exception.
        Random random = new Random(7);
        int[] specials = {harmony.start(), harmony.channel(), harmony.message(), harmony.end(), harmony.constrain(),
            harmony.call(), harmony.returnToken()};
        for (int trial = 0; trial < 300; trial++) {
            int[] out = new int[1 + random.nextInt(40)];
            for (int i = 0; i < out.length; i++) {
                out[i] = random.nextInt(4) == 0 ? specials[random.nextInt(specials.length)] : random.nextInt(600);
            }
            int[] sizes = new int[out.length];
            Arrays.fill(sizes, 1);
            Result fuzzed = assemble(steps(decoder(List.of("zz"), true, "c"), messages(out, sizes,
                    trial % 2 == 0 ? FinishReason.FINISH_REASON_STOP : FinishReason.FINISH_REASON_LENGTH)));
            assertNotNull(fuzzed.finishReason(), Arrays.toString(out));
        }
    }

    @Test
    void choicesAreParsedEachOnTheirOwn() {
        // n = 2: two decoders fed in turn, as the router's two streams arrive interleaved.
        ChoiceDecoder first = decoder(List.of(), false, "call_n_0_");
        ChoiceDecoder second = decoder(List.of(), false, "call_n_1_");
        List<GenerateResponse> a = messages(ids(TOOL_CALL), oneByOne(ids(TOOL_CALL).length), FinishReason.FINISH_REASON_STOP);
        List<GenerateResponse> b = messages(ids(ANSWER), oneByOne(ids(ANSWER).length), FinishReason.FINISH_REASON_STOP);
        List<ChoiceDecoder.Step> stepsA = new ArrayList<>();
        List<ChoiceDecoder.Step> stepsB = new ArrayList<>();
        for (int i = 0; i < Math.max(a.size(), b.size()); i++) {
            if (i < a.size()) stepsA.add(first.accept(a.get(i)));
            if (i < b.size()) stepsB.add(second.accept(b.get(i)));
        }
        Result ra = assemble(stepsA);
        Result rb = assemble(stepsB);
        assertEquals("tool_calls", ra.finishReason());
        assertEquals("call_n_0_0", ra.toolCalls().getFirst().id());
        assertEquals("", ra.content());
        assertEquals("stop", rb.finishReason());
        assertEquals("It is sunny in Paris, 24 °C.", rb.content());
        assertEquals(List.of(), rb.toolCalls());
    }

    @Test
    void stopStringsCutTheContentOnly() {
        // "sunny" is in the reasoning first: it does not stop there, only in the content.
        int n = ids(ANSWER).length;
        for (int[] sizes : List.of(whole(n), oneByOne(n))) {
            ChoiceDecoder d = decoder(List.of("sunny"), false, "c");
            List<ChoiceDecoder.Step> s = steps(d, messages(ids(ANSWER), sizes, FinishReason.FINISH_REASON_STOP));
            Result r = assemble(s);
            assertEquals("It said sunny; say so.", r.reasoning());
            assertEquals("It is ", r.content());
            assertEquals("stop", r.finishReason());
            assertTrue(s.getLast().stopStringMatched());
            assertTrue(d.tokens() < n, "generation ends at the stop string");
        }
        // Nor in a tool call's arguments.
        int m = ids(TOOL_CALL).length;
        Result call = decode(TOOL_CALL, oneByOne(m), List.of("Paris"));
        assertEquals("{\"city\":\"Paris\",\"unit\":\"celsius\"}", call.toolCalls().getFirst().arguments());
        assertEquals("Need the weather in Paris.", call.reasoning());
        assertEquals("tool_calls", call.finishReason());
    }

    @Test
    void logprobsGoOutWithTheirTokensAndNotForTheEndToken() {
        int[] answer = ids(ANSWER);
        List<ChoiceDecoder.Step> s = steps(decoder(List.of(), true, "c"),
                messages(answer, oneByOne(answer.length), FinishReason.FINISH_REASON_STOP));
        for (int i = 0; i < answer.length - 1; i++) {
            assertEquals(List.of(answer[i]), s.get(i).logprobs().stream().map(e -> e.logprob().getTokenId()).toList(),
                    "token " + i);
        }
        assertEquals(List.of(), s.getLast().logprobs(), "<|return|> ends the turn and has no entry");
        assertFalse(assemble(s).logprobTokens().contains(harmony.returnToken()));
    }
}
