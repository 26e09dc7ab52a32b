package io.moeserve.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * Streaming detokenization on real tokenizers: byte-level BPE (Qwen3, Llama 3), where emoji and CJK characters
 * span tokens, and SentencePiece with byte fallback (Llama 2), where spaces are U+2581 and unknown characters are
 * byte tokens. The streamed pieces must add up to the full decode and never contain a broken character.
 */
class IncrementalDetokenizerTest {

    private static final List<String> TEXTS = List.of(
            "Hello 😀 world! 👩‍💻🇩🇪 done.",
            "你好，世界！我们今天去哪里吃饭？ 天気がいいですね。 안녕하세요",
            "Mixed: naïve café — “quotes” … ½ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🦊🐶 Straße\n\tindented\n  two spaces",
            "🎉🎉🎉 emoji run 🏳️‍🌈 then text",
            " leading space and trailing space ");

    @TestFactory
    Stream<DynamicTest> streamedPiecesAddUpToTheFullDecode() {
        List<DynamicTest> tests = new ArrayList<>();
        for (String model : List.of("qwen3", "llama3", "llama2")) {
            for (int t = 0; t < TEXTS.size(); t++) {
                String text = TEXTS.get(t);
                tests.add(DynamicTest.dynamicTest(model + "/" + t, () -> {
                    HfTokenizer tokenizer = TestTokenizers.get(model);
                    int[] ids = tokenizer.encode(text);
                    List<String> pieces = stream(new IncrementalDetokenizer(tokenizer, false), ids);
                    String full = tokenizer.decode(ids, false);
                    assertEquals(full, String.join("", pieces));
                    assertFalse(full.contains("\uFFFD"));
                    for (String piece : pieces) assertFalse(piece.contains("\uFFFD"), "broken character in " + pieces);
                }));
            }
        }
        return tests.stream();
    }

    @Test
    void theTextsReallySplitCharactersAcrossTokens() {
        // Otherwise the test above would pass without holding anything back.
        for (String model : List.of("qwen3", "llama3", "llama2")) {
            HfTokenizer tokenizer = TestTokenizers.get(model);
            long heldBack = 0;
            for (String text : TEXTS) {
                int[] ids = tokenizer.encode(text);
                heldBack += stream(new IncrementalDetokenizer(tokenizer, false), ids).subList(0, ids.length).stream()
                        .filter(String::isEmpty).count();
            }
            assertTrue(heldBack > 0, model);
        }
    }

    private static List<String> stream(IncrementalDetokenizer detokenizer, int[] ids) {
        List<String> pieces = new ArrayList<>();
        for (int id : ids) pieces.add(detokenizer.add(id));
        pieces.add(detokenizer.flush());
        return pieces;
    }

    @Test
    void holdsBackPartialCharactersUntilComplete() {
        HfTokenizer qwen = TestTokenizers.get("qwen3");
        int[] ids = qwen.encode("👩‍💻");
        assertTrue(ids.length > 1, "the emoji spans several tokens");
        IncrementalDetokenizer d = new IncrementalDetokenizer(qwen, false);
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < ids.length - 1; i++) out.append(d.add(ids[i]));
        assertFalse(out.toString().contains("\uFFFD"));
        out.append(d.add(ids[ids.length - 1])).append(d.flush());
        assertEquals("👩‍💻", out.toString());
    }

    @Test
    void sentencePieceSpacesNeedThePromptAsPrefix() {
        HfTokenizer llama2 = TestTokenizers.get("llama2");
        int[] prompt = llama2.encode("The answer is");
        int[] all = llama2.encode("The answer is forty two, 你好 😀");
        int[] generated = IntStream.range(prompt.length, all.length).map(i -> all[i]).toArray();
        String expected = llama2.decode(all, false).substring(llama2.decode(prompt, false).length());
        assertTrue(expected.startsWith(" forty"), expected);
        assertEquals(expected, String.join("", stream(new IncrementalDetokenizer(llama2, false, prompt), generated)));
        // Without the prompt the first word has no space, as a decode of the generated ids alone.
        assertEquals(llama2.decode(generated, false),
                String.join("", stream(new IncrementalDetokenizer(llama2, false), generated)));
    }

    @Test
    void skipsSpecialTokensWhenAsked() {
        HfTokenizer qwen = TestTokenizers.get("qwen3");
        int[] ids = qwen.encode("Answer: 42 😀<|im_end|>\n<|im_start|>");
        assertEquals("Answer: 42 😀\n", String.join("", stream(new IncrementalDetokenizer(qwen, true), ids)));
        assertEquals("Answer: 42 😀<|im_end|>\n<|im_start|>",
                String.join("", stream(new IncrementalDetokenizer(qwen, false), ids)));
    }

    @Test
    void invalidBytesAreEmittedByFlush() {
        // Llama 2's byte-fallback token <0xE2> opens a three-byte character that never completes.
        HfTokenizer llama2 = TestTokenizers.get("llama2");
        int lone = llama2.tokenId("<0xE2>").orElseThrow();
        int[] ids = IntStream.concat(IntStream.of(llama2.encode("ok")), IntStream.of(lone)).toArray();
        IncrementalDetokenizer d = new IncrementalDetokenizer(llama2, false);
        StringBuilder streamed = new StringBuilder();
        for (int id : ids) streamed.append(d.add(id));
        assertEquals("ok", streamed.toString());
        assertEquals("\uFFFD", d.flush());
        assertEquals("", d.flush(), "flush starts afresh");
    }
}
