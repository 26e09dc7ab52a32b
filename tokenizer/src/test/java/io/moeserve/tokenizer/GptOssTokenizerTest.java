package io.moeserve.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * gpt-oss's real tokenizer (openai/gpt-oss-20b's tokenizer.json, downloaded by the build) with its official chat
 * template (chat-templates/gpt_oss): a rendered conversation with a tool call round trip encodes each of harmony's
 * special tokens as the single id gpt-oss was trained with, and decodes back to the text.
 */
class GptOssTokenizerTest {
    /** The ids of openai/gpt-oss-20b's tokenizer.json (o200k_harmony). */
    private static final Map<String, Integer> HARMONY_IDS = ids();

    private static Map<String, Integer> ids() {
        Map<String, Integer> ids = new LinkedHashMap<>();
        ids.put("<|startoftext|>", 199998);
        ids.put("<|endoftext|>", 199999);
        ids.put("<|return|>", 200002);
        ids.put("<|constrain|>", 200003);
        ids.put("<|channel|>", 200005);
        ids.put("<|start|>", 200006);
        ids.put("<|end|>", 200007);
        ids.put("<|message|>", 200008);
        ids.put("<|call|>", 200012);
        return ids;
    }

    @Test
    void harmonysSpecialTokensHaveGptOssIds() {
        HfTokenizer tokenizer = TestTokenizers.get("gpt_oss");
        HARMONY_IDS.forEach((token, id) -> {
            assertEquals(OptionalInt.of(id), tokenizer.tokenId(token), token);
            assertTrue(tokenizer.isSpecialToken(id), token);
        });
    }

    @Test
    void aRenderedToolCallRoundTripEncodesEachSpecialTokenAsOneId() {
        HfTokenizer tokenizer = TestTokenizers.get("gpt_oss");
        Map<String, Object> tool = Map.of("type", "function", "function", Map.of("name", "get_weather",
                "description", "Get the weather", "parameters", Map.of("type", "object",
                        "properties", Map.of("city", Map.of("type", "string")), "required", List.of("city"))));
        List<ChatMessage> messages = List.of(
                ChatMessage.system("Be brief."),
                ChatMessage.user("Weather in Paris?"),
                new ChatMessage("assistant", null, List.of(ToolCall.withArguments("call_1", "get_weather",
                        Map.of("city", "Paris"))), "Call get_weather.", null, null),
                ChatMessage.tool("{\"sky\": \"sunny\"}", "call_1", "get_weather"));
        String text = tokenizer.chatTemplate().orElseThrow().render(messages, List.of(tool), true,
                Map.of("reasoning_effort", "low"));
        assertTrue(text.contains("<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>"
                + "{\"city\": \"Paris\"}<|call|>"), text);

        int[] ids = tokenizer.encode(text, false);
        for (Map.Entry<String, Integer> e : HARMONY_IDS.entrySet()) {
            int inText = text.split(Pattern.quote(e.getKey()), -1).length - 1;
            int asIds = 0;
            for (int id : ids) {
                if (id == e.getValue()) asIds++;
            }
            assertEquals(inText, asIds, e.getKey() + ": each occurrence is one id");
        }
        assertEquals(200006, ids[0], "<|start|> opens the prompt");
        assertEquals(200006, ids[ids.length - 2], "the generation prompt is <|start|>assistant");
        assertEquals("assistant", tokenizer.decode(new int[] {ids[ids.length - 1]}, false), "assistant is one token");
        assertEquals(text, tokenizer.decode(ids, false));
    }
}
