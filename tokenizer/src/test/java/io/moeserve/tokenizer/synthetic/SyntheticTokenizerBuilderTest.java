package io.moeserve.tokenizer.synthetic;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moeserve.tokenizer.ChatMessage;
import io.moeserve.tokenizer.HfTokenizer;
import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The synthetic tokenizer is a real one: DJL loads it, it round-trips text, and its ids stay below V. */
class SyntheticTokenizerBuilderTest {

    private static final List<String> TEXTS = List.of(
            "The harbour town woke slowly. Mara opened the bakery at 6:00!",
            "Grüße aus München, 你好，世界！ 😀👩‍💻 naïve café — “quotes”",
            "  leading spaces\n\n\ttabs\r\n12345 3.14 <not a special> code: x = y + 2 * (z - 1)\n");

    @ParameterizedTest
    @ValueSource(ints = {300, 32_000, 151_936})
    void djlLoadsItAndEveryIdIsBelowV(int vocabSize, @TempDir Path dir) throws IOException {
        SyntheticTokenizerBuilder.write(dir, vocabSize);
        SpecialTokenIds special = SyntheticTokenizerBuilder.specialTokenIds(vocabSize);
        try (HfTokenizer tokenizer = HfTokenizer.load(dir)) {
            assertEquals(SyntheticTokenizerBuilder.tokenizerVocabSize(vocabSize), tokenizer.vocabSize());
            assertTrue(tokenizer.vocabSize() <= vocabSize);
            for (String text : TEXTS) {
                int[] ids = tokenizer.encode(text);
                for (int id : ids) assertTrue(id >= 0 && id < vocabSize, "id " + id);
                assertEquals(text, tokenizer.decode(ids, false));
            }
            assertArrayEquals(new int[] {special.endOfText()}, tokenizer.encode("<|endoftext|>"));
            assertArrayEquals(new int[] {special.imStart()}, tokenizer.encode("<|im_start|>"));
            assertArrayEquals(new int[] {special.imEnd()}, tokenizer.encode("<|im_end|>"));
            assertEquals(OptionalInt.of(special.eos()), tokenizer.tokenId("<|im_end|>"));
            assertTrue(tokenizer.isSpecialToken(special.eos()));
            assertEquals("<|im_end|>", tokenizer.eosToken().orElseThrow());

            String prompt = tokenizer.chatTemplate().orElseThrow().render(
                    List.of(ChatMessage.system("Be brief."), ChatMessage.user("Hi")), true);
            assertEquals("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                    + "<|im_start|>assistant\n", prompt);
            int[] ids = tokenizer.encode(prompt);
            assertEquals(special.imStart(), ids[0]);
            assertEquals("system\nBe brief.\nuser\nHi\nassistant\n", tokenizer.decode(ids, true));
        }
    }

    @Test
    void trainsOnAGivenCorpusUpToExactlyV(@TempDir Path dir) throws IOException {
        String corpus = String.join("\n", TEXTS).repeat(3);
        SyntheticTokenizerBuilder.write(dir, 300, TokenizerFormat.chatml(), corpus);
        try (HfTokenizer tokenizer = HfTokenizer.load(dir)) {
            assertEquals(300, tokenizer.vocabSize(), "256 bytes, 41 learned tokens, 3 special tokens");
            for (String text : TEXTS) assertEquals(text, tokenizer.decode(tokenizer.encode(text), false));
        }
        assertEquals(41, BpeTrainer.train(corpus, 41).size());
        assertEquals(BpeTrainer.train(corpus).subList(0, 41), BpeTrainer.train(corpus, 41));
    }

    @Test
    void sizeGrowsWithVUntilTheCorpusRunsOutOfPairs() {
        assertEquals(259, SyntheticTokenizerBuilder.tokenizerVocabSize(259), "bytes and special tokens only");
        assertEquals(300, SyntheticTokenizerBuilder.tokenizerVocabSize(300));
        assertEquals(600, SyntheticTokenizerBuilder.tokenizerVocabSize(600));
        int cap = SyntheticTokenizerBuilder.tokenizerVocabSize(151_936);
        assertEquals(653, cap, "the embedded corpus supports this many ids; a change to it changes this");
        assertEquals(cap, SyntheticTokenizerBuilder.tokenizerVocabSize(cap + 1));
        assertEquals(new SpecialTokenIds(297, 298, 299), SyntheticTokenizerBuilder.specialTokenIds(300));
        assertThrows(IllegalArgumentException.class, () -> SyntheticTokenizerBuilder.tokenizerVocabSize(258));
    }

    @Test
    void sameVGivesIdenticalBytes(@TempDir Path dir) throws IOException {
        SyntheticTokenizerBuilder.write(dir.resolve("a"), 1000);
        SyntheticTokenizerBuilder.write(dir.resolve("b"), 1000);
        for (String file : List.of("tokenizer.json", "tokenizer_config.json")) {
            assertArrayEquals(Files.readAllBytes(dir.resolve("a").resolve(file)),
                    Files.readAllBytes(dir.resolve("b").resolve(file)), file);
        }
        assertTrue(Files.readString(dir.resolve("a").resolve("tokenizer.json")).indexOf('\r') < 0);
    }

    @Test
    @SuppressWarnings("unchecked")
    void idsMatchAnIndependentImplementation(@TempDir Path dir) throws Exception {
        // tokenizers/synthetic_32000/expected-ids.json: @lenml/tokenizers run on this builder's output for V=32000
        // (see tokenizers/expected_ids.cjs). A change to the corpus or the trainer needs it regenerated.
        SyntheticTokenizerBuilder.write(dir, 32_000);
        ObjectMapper json = new ObjectMapper();
        List<Map<String, Object>> samples =
                json.readValue(resource("tokenizers/samples.json").toFile(), new TypeReference<>() { });
        Map<String, Map<String, Object>> expected = json.readValue(
                resource("tokenizers/synthetic_32000/expected-ids.json").toFile(), new TypeReference<>() { });
        try (HfTokenizer tokenizer = HfTokenizer.load(dir)) {
            for (Map<String, Object> sample : samples) {
                if (sample.containsKey("repeat")) continue;
                List<Integer> want = (List<Integer>) expected.get((String) sample.get("name")).get("ids");
                int[] ids = tokenizer.encode((String) sample.get("text"));
                int[] wantIds = want.stream().mapToInt(Integer::intValue).toArray();
                assertArrayEquals(wantIds, ids, (String) sample.get("name"));
            }
        }
    }

    @Test
    void theGoldenChatTemplateFilesUseThisTemplate() throws Exception {
        // chat-templates/synthetic_chatml holds jinja2's renderings of this template; they must not drift apart.
        Map<String, Object> config = new ObjectMapper().readValue(
                resource("chat-templates/synthetic_chatml/tokenizer_config.json").toFile(), new TypeReference<>() { });
        assertEquals(SyntheticTokenizerBuilder.chatTemplate(), config.get("chat_template"));
    }

    @Test
    void harmonyFormatSpeaksGptOssChatFormat(@TempDir Path dir) throws IOException {
        TokenizerFormat harmony = TokenizerFormat.harmony();
        SyntheticTokenizerBuilder.write(dir, 1000, harmony);
        Map<String, Integer> special = SyntheticTokenizerBuilder.specialTokenIds(1000, harmony);
        assertEquals(harmony.specialTokens(), List.copyOf(special.keySet()));
        try (HfTokenizer tokenizer = HfTokenizer.load(dir)) {
            assertEquals(SyntheticTokenizerBuilder.tokenizerVocabSize(1000, harmony), tokenizer.vocabSize());
            special.forEach((token, id) -> {
                assertArrayEquals(new int[] {id}, tokenizer.encode(token, false), token);
                assertTrue(tokenizer.isSpecialToken(id), token);
            });
            assertEquals("<|return|>", tokenizer.eosToken().orElseThrow());
            String prompt = tokenizer.chatTemplate().orElseThrow().render(List.of(ChatMessage.user("Hi")), true);
            assertTrue(prompt.startsWith("<|start|>system<|message|>You are ChatGPT"), prompt);
            assertTrue(prompt.endsWith("<|end|><|start|>user<|message|>Hi<|end|><|start|>assistant"), prompt);
            int[] ids = tokenizer.encode(prompt, false);
            assertEquals(special.get("<|start|>"), ids[0]);
            assertEquals(3, Arrays.stream(ids).filter(id -> id == special.get("<|start|>")).count(),
                    "system, user and assistant each open with one <|start|> token");
            assertEquals(prompt, tokenizer.decode(ids, false));
        }
        assertThrows(IllegalArgumentException.class, () -> SyntheticTokenizerBuilder.tokenizerVocabSize(264, harmony));
        assertEquals(265, SyntheticTokenizerBuilder.tokenizerVocabSize(265, harmony));
    }

    private static Path resource(String name) throws URISyntaxException {
        return Path.of(SyntheticTokenizerBuilderTest.class.getClassLoader().getResource(name).toURI());
    }
}
