package io.moeserve.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Renders the real chat templates of Qwen3, DeepSeek-V3, Llama 3 and gpt-oss (and the synthetic ChatML one) and
 * compares the output byte for byte with what Python's jinja2 produced for the same cases (render_golden.py, run
 * as transformers sets jinja2 up); where jinja2 raised, rendering must throw, with the template's own message.
 * Each case also checks that the Java messages turn into exactly the dicts the Python side was given.
 */
class ChatTemplateGoldenTest {

    static final List<String> MODELS = List.of("qwen3", "deepseek_v3", "llama3", "synthetic_chatml", "gpt_oss");
    private static final ObjectMapper JSON = new ObjectMapper();

    @TestFactory
    Stream<DynamicTest> rendersLikeJinja2() throws IOException {
        List<DynamicTest> tests = new ArrayList<>();
        for (String model : MODELS) {
            Path dir = TestResources.path("chat-templates/" + model);
            TokenizerConfig config = TokenizerConfig.read(TestResources.tokenizerConfigDir(model));
            List<Map<String, Object>> cases =
                    JSON.readValue(dir.resolve("cases.json").toFile(), new TypeReference<>() { });
            for (Map<String, Object> c : cases) {
                String name = (String) c.get("name");
                tests.add(DynamicTest.dynamicTest(model + "/" + name, () -> {
                    ChatTemplate template = config.compileChatTemplate().orElseThrow();
                    if (c.containsKey("now")) template = template.withClock(fixedClock((String) c.get("now")));
                    Path error = dir.resolve("expected").resolve(name + ".error");
                    if (Files.exists(error)) {
                        assertRefused(Files.readString(error), template, c);
                    } else {
                        String expected = Files.readString(dir.resolve("expected").resolve(name + ".txt"));
                        assertEquals(expected, render(template, c));
                    }
                }));
            }
        }
        return tests.stream();
    }

    /**
     * jinja2 raised "Type: message": the Java side throws too, with the template's own message where the template
     * raised it (raise_exception is TemplateError), and for Python's own errors (TypeError, ...) with any message.
     */
    private static void assertRefused(String python, ChatTemplate template, Map<String, Object> c) {
        ChatTemplateException e = assertThrows(ChatTemplateException.class, () -> render(template, c), python);
        String prefix = "TemplateError: ";
        if (python.startsWith(prefix)) {
            String message = python.substring(prefix.length());
            assertTrue(e.getMessage().contains(message), "expected '" + message + "' in '" + e.getMessage() + "'");
        }
    }

    @SuppressWarnings("unchecked")
    static String render(ChatTemplate template, Map<String, Object> c) {
        List<ChatMessage> messages = new ArrayList<>();
        for (Map<String, Object> m : (List<Map<String, Object>>) c.get("messages")) {
            ChatMessage message = ChatJson.message(m);
            // The Java record must present the template with the very dict Python rendered.
            assertEquals(m, message.toTemplateValue(template.reasoningKey()), "message as the template sees it");
            messages.add(message);
        }
        List<Map<String, Object>> tools = (List<Map<String, Object>>) c.get("tools");
        Map<String, Object> kwargs = (Map<String, Object>) c.getOrDefault("kwargs", Map.of());
        boolean addGenerationPrompt = Boolean.TRUE.equals(c.get("add_generation_prompt"));
        return template.render(messages, tools, addGenerationPrompt, kwargs);
    }

    static Clock fixedClock(String isoLocal) {
        return Clock.fixed(LocalDateTime.parse(isoLocal).toInstant(ZoneOffset.UTC), ZoneOffset.UTC);
    }
}
