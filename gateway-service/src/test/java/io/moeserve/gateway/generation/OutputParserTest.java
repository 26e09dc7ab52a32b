package io.moeserve.gateway.generation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.moeserve.gateway.GatewaySettings.OutputParser;
import io.moeserve.tokenizer.HfTokenizer;
import io.moeserve.tokenizer.synthetic.SyntheticTokenizerBuilder;
import io.moeserve.tokenizer.synthetic.TokenizerFormat;
import java.io.IOException;
import java.nio.file.Path;
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
}
