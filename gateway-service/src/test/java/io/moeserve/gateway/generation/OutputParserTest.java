package io.moeserve.gateway.generation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.gateway.GatewaySettings.OutputParser;
import io.moeserve.tokenizer.HfTokenizer;
import io.moeserve.tokenizer.synthetic.SyntheticTokenizerBuilder;
import io.moeserve.tokenizer.synthetic.TokenizerFormat;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** moe.gateway.output-parser against the served tokenizer, as the planner decides it at startup. */
class OutputParserTest {

    @Test
    void harmonyWithATokenizerWithoutItsTokensIsRefusedNamingWhatIsMissing(@TempDir Path dir) throws IOException {
        SyntheticTokenizerBuilder.write(dir, 1000);
        try (HfTokenizer chatml = HfTokenizer.load(dir)) {
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> GenerationPlanner.harmonyTokens(OutputParser.HARMONY, chatml, "/models/qwen"));
            assertEquals("moe.gateway.output-parser is harmony, but the tokenizer of /models/qwen lacks harmony's special "
                    + "tokens [<|start|>, <|channel|>, <|message|>, <|end|>, <|return|>, <|call|>, <|constrain|>]; serve a "
                    + "gpt-oss tokenizer, or set it to auto or none", e.getMessage());
            assertNull(GenerationPlanner.harmonyTokens(OutputParser.AUTO, chatml, "/models/qwen"), "auto: plain text");
            assertNull(GenerationPlanner.harmonyTokens(OutputParser.NONE, chatml, "/models/qwen"));
        }
    }

    @Test
    void aGptOssTokenizerIsReadAsHarmonyUnlessTurnedOff(@TempDir Path dir) throws IOException {
        SyntheticTokenizerBuilder.write(dir, 1000, TokenizerFormat.harmony());
        try (HfTokenizer gptOss = HfTokenizer.load(dir)) {
            HarmonyParser.Tokens tokens = HarmonyParser.Tokens.of(gptOss).orElseThrow();
            assertEquals(gptOss.tokenId("<|call|>").orElseThrow(), tokens.call());
            assertEquals(tokens, GenerationPlanner.harmonyTokens(OutputParser.AUTO, gptOss, "/models/gpt-oss"));
            assertEquals(tokens, GenerationPlanner.harmonyTokens(OutputParser.HARMONY, gptOss, "/models/gpt-oss"));
            assertNull(GenerationPlanner.harmonyTokens(OutputParser.NONE, gptOss, "/models/gpt-oss"));
        }
    }

    /** The official template of test resource {@code family}, as the checkpoint's chat_template.jinja. */
    private static void writeTemplate(Path dir, String family) throws IOException {
        try (InputStream in = OutputParserTest.class.getResourceAsStream("/" + family + "/chat_template.jinja")) {
            Files.write(dir.resolve("chat_template.jinja"), in.readAllBytes());
        }
    }

    @Test
    void autoReadsQwenAndDeepSeekByTheirTemplatesMarkers(@TempDir Path dir) throws IOException {
        SyntheticTokenizerBuilder.write(dir, 1000);
        writeTemplate(dir, "qwen3");
        TaggedOutputParser.Format qwen = new TaggedOutputParser.Format(TaggedOutputParser.Family.QWEN, true);
        TaggedOutputParser.Format deepSeek = new TaggedOutputParser.Format(TaggedOutputParser.Family.DEEPSEEK, true);
        try (HfTokenizer qwen3 = HfTokenizer.load(dir)) {
            assertEquals(qwen, GenerationPlanner.outputFormat(OutputParser.AUTO, true, qwen3, "/models/qwen3"));
            assertEquals(new TaggedOutputParser.Format(TaggedOutputParser.Family.QWEN, false),
                    GenerationPlanner.outputFormat(OutputParser.AUTO, false, qwen3, "/models/qwen3"), "reasoning off");
            assertEquals(deepSeek, GenerationPlanner.outputFormat(OutputParser.DEEPSEEK, true, qwen3, "/models/qwen3"));
            assertNull(GenerationPlanner.outputFormat(OutputParser.NONE, true, qwen3, "/models/qwen3"));
        }
        writeTemplate(dir, "deepseek_v3");
        try (HfTokenizer v3 = HfTokenizer.load(dir)) {
            assertEquals(deepSeek, GenerationPlanner.outputFormat(OutputParser.AUTO, true, v3, "/models/deepseek"));
            assertEquals(qwen, GenerationPlanner.outputFormat(OutputParser.QWEN, true, v3, "/models/deepseek"));
        }
    }

    @Test
    void aTemplateWithoutMarkersIsPlainTextAndGptOssStaysHarmony(@TempDir Path dir) throws IOException {
        SyntheticTokenizerBuilder.write(dir, 1000);
        Files.writeString(dir.resolve("chat_template.jinja"),
                "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}");
        try (HfTokenizer plain = HfTokenizer.load(dir)) {
            assertNull(GenerationPlanner.outputFormat(OutputParser.AUTO, true, plain, "/models/plain"));
        }
        Path gptOssDir = dir.resolve("gpt-oss");
        SyntheticTokenizerBuilder.write(gptOssDir, 1000, TokenizerFormat.harmony());
        try (HfTokenizer gptOss = HfTokenizer.load(gptOssDir)) {
            assertEquals(HarmonyParser.Tokens.of(gptOss).orElseThrow(),
                    GenerationPlanner.outputFormat(OutputParser.AUTO, true, gptOss, "/models/gpt-oss"));
        }
    }

    @Test
    void thePromptTellsWhetherTheOutputStartsInsideAThinkBlock(@TempDir Path dir) throws IOException {
        SyntheticTokenizerBuilder.write(dir, 1000);
        try (HfTokenizer tokenizer = HfTokenizer.load(dir)) {
            assertTrue(TaggedOutputParser.opensThink(tokenizer,
                    tokenizer.encode("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n", false)));
            assertFalse(TaggedOutputParser.opensThink(tokenizer, tokenizer.encode(
                    "<|im_start|>assistant\n<think>\n\n</think>\n\n", false)), "enable_thinking=false closed it");
            assertFalse(TaggedOutputParser.opensThink(tokenizer, tokenizer.encode("<|im_start|>assistant\n", false)));
        }
    }

    /** A synthetic tokenizer with {@code special} as its special tokens (eos the second) and {@code template}. */
    private static HfTokenizer withTokens(Path dir, List<String> special, String template) throws IOException {
        SyntheticTokenizerBuilder.write(dir, 1000, new TokenizerFormat(special, special.get(0), special.get(1),
                special.get(1), template));
        return HfTokenizer.load(dir);
    }

    @Test
    void autoReadsMistralsToolCallsMarkerByItsToken(@TempDir Path dir) throws IOException {
        // The part of Mixtral-8x22B-Instruct's template that writes an assistant's calls.
        String template = "{% for m in messages %}{% if m.tool_calls %}[TOOL_CALLS] {{ m.tool_calls | tojson }}</s>"
                + "{% else %}{{ m.content }}{% endif %}{% endfor %}";
        try (HfTokenizer mistral = withTokens(dir, List.of("<s>", "</s>", "[TOOL_CALLS]"), template)) {
            JsonToolCallParser.Format format = new JsonToolCallParser.Format(JsonToolCallParser.Family.MISTRAL,
                    mistral.tokenId("[TOOL_CALLS]").orElseThrow());
            assertEquals(format, GenerationPlanner.outputFormat(OutputParser.AUTO, true, mistral, "/models/mixtral"));
            assertEquals(format, GenerationPlanner.outputFormat(OutputParser.MISTRAL, true, mistral, "/models/mixtral"));
            assertEquals(format, GenerationPlanner.forRequest(format, false), "Mistral's marker is never plain text");
            assertNull(GenerationPlanner.outputFormat(OutputParser.NONE, true, mistral, "/models/mixtral"));
        }
    }

    @Test
    void autoReadsLlamaJsonCallsByTheTemplatesToolInstructionOrPythonTag(@TempDir Path dir) throws IOException {
        // Llama 3.1's instruction when the request has tools, as its template words it.
        String template = "{% if tools %}Given the following functions, please respond with a JSON for a function call "
                + "with its proper arguments that best answers the given prompt.{% endif %}"
                + "{% for m in messages %}{{ m.content }}<|eot_id|>{% endfor %}";
        List<String> special = List.of("<|begin_of_text|>", "<|eot_id|>", "<|python_tag|>");
        try (HfTokenizer llama = withTokens(dir.resolve("a"), special, template)) {
            JsonToolCallParser.Format format = new JsonToolCallParser.Format(JsonToolCallParser.Family.LLAMA3_JSON,
                    llama.tokenId("<|python_tag|>").orElseThrow());
            assertEquals(format, GenerationPlanner.outputFormat(OutputParser.AUTO, true, llama, "/models/llama"));
            assertTrue(format.onlyWithTools(), "plain JSON answers to requests without tools stay content");
            assertEquals(format, GenerationPlanner.forRequest(format, true));
            assertNull(GenerationPlanner.forRequest(format, false), "no tools sent: plain text");
        }
        try (HfTokenizer llama = withTokens(dir.resolve("b"), special,
                "{% for m in messages %}{% if m.tool_calls %}<|python_tag|>{% endif %}{{ m.content }}{% endfor %}")) {
            assertEquals(JsonToolCallParser.Family.LLAMA3_JSON, ((JsonToolCallParser.Format) GenerationPlanner
                    .outputFormat(OutputParser.AUTO, true, llama, "/models/llama")).family());
        }
        SyntheticTokenizerBuilder.write(dir.resolve("c"), 1000);
        try (HfTokenizer chatml = HfTokenizer.load(dir.resolve("c"))) {
            assertEquals(new JsonToolCallParser.Format(JsonToolCallParser.Family.LLAMA3_JSON, -1),
                    GenerationPlanner.outputFormat(OutputParser.LLAMA3_JSON, true, chatml, "/models/x"), "no such token");
        }
    }
}
