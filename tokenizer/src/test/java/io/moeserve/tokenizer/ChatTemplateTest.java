package io.moeserve.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;

/** ChatTemplate's contract beyond the golden files: loud failures, variables, and thread safety. */
class ChatTemplateTest {

    private static final List<ChatMessage> HELLO = List.of(ChatMessage.user("hello"));

    @Test
    void raiseExceptionThrowsWithTheTemplatesMessage() {
        ChatTemplate t = ChatTemplate.compile("{% for m in messages %}{% if m.role == 'user' %}"
                + "{{ raise_exception('Only assistant turns, got ' + m.role) }}{% endif %}{% endfor %}");
        ChatTemplateException e = assertThrows(ChatTemplateException.class, () -> t.render(HELLO, false));
        assertEquals("Only assistant turns, got user", e.getMessage());
    }

    @Test
    void unknownFilterOrTestIsRefusedAtCompileTime() {
        // Jinjava would print nothing for an unknown filter or test, without an error.
        ChatTemplateException filter = assertThrows(ChatTemplateException.class,
                () -> ChatTemplate.compile("{{ messages|no_such_filter }}"));
        assertTrue(filter.getMessage().contains("filter 'no_such_filter'"), filter.getMessage());
        ChatTemplateException test = assertThrows(ChatTemplateException.class,
                () -> ChatTemplate.compile("{% if messages is no_such_test %}x{% endif %}"));
        assertTrue(test.getMessage().contains("test 'no_such_test'"), test.getMessage());
    }

    @Test
    void whatJinjavaCannotDoFailsLoudly() {
        // Each of these renders as silently wrong text in plain Jinjava.
        assertThrows(ChatTemplateException.class, () -> ChatTemplate.compile("{% no_such_tag %}"));
        assertThrows(ChatTemplateException.class,
                () -> ChatTemplate.compile("{% for m in messages if m.role == 'user' %}{{ m.content }}{% endfor %}"));
        assertThrows(ChatTemplateException.class, () -> ChatTemplate.compile("{% filter upper %}x{% endfilter %}"));
        ChatTemplate previous = ChatTemplate.compile("{% for m in messages %}{{ loop.previtem }}{% endfor %}");
        assertThrows(ChatTemplateException.class, () -> previous.render(HELLO, false));
        ChatTemplate javaMethod = ChatTemplate.compile("{{ messages[0].content.toUpperCase() }}");
        assertThrows(ChatTemplateException.class, () -> javaMethod.render(HELLO, false));
        ChatTemplate mutation = ChatTemplate.compile("{% set _ = messages.append(1) %}");
        assertThrows(ChatTemplateException.class, () -> mutation.render(HELLO, false));
    }

    @Test
    void pythonFormsThatJinjavaGetsWrongAreRewritten() {
        ChatTemplate t = ChatTemplate.compile(
                "{%- set ns = namespace(last=messages|length - 1) -%}"
                        + "{%- for m in messages[::-1] %}"
                        + "{{ m.content.split('</think>')[-1].lstrip('\\n') }}|{% endfor -%}"
                        + "{{ ns.last }}|{{ tools is none }}|{{ messages[0].content[::-1] }}");
        List<ChatMessage> messages = List.of(ChatMessage.user("a"), ChatMessage.assistant("<think>x</think>\n\nb"));
        assertEquals("b|a|1|True|a", t.render(messages, false));
    }

    @Test
    void extraVariablesOverrideSpecialTokensButNotTheConversation() {
        ChatTemplate t = ChatTemplate.compile("{{ bos_token }}{{ enable_thinking }}", Map.of("bos_token", "<s>"));
        assertEquals("<s>False", t.render(HELLO, null, false, Map.of("enable_thinking", false)));
        assertEquals("[BOS]True", t.render(HELLO, null, false, Map.of("bos_token", "[BOS]", "enable_thinking", true)));
        Map<String, Object> none = new HashMap<>();
        none.put("enable_thinking", null);
        assertEquals("<s>None", t.render(HELLO, null, false, none));
        assertThrows(IllegalArgumentException.class, () -> t.render(HELLO, null, false, Map.of("messages", List.of())));
    }

    @Test
    void rendersConcurrently() throws Exception {
        ChatTemplate t = ChatTemplate.compile(
                "{% for m in messages %}<|{{ m.role }}|>{{ m.content.strip() }}{% endfor %}"
                        + "{{ '<|a|>' if add_generation_prompt }}");
        String expected = t.render(HELLO, true);
        try (ExecutorService pool = Executors.newFixedThreadPool(4)) {
            List<Future<String>> results = new ArrayList<>();
            for (int i = 0; i < 200; i++) results.add(pool.submit(() -> t.render(HELLO, true)));
            for (Future<String> f : results) assertEquals(expected, f.get());
        }
        assertEquals("<|user|>hello<|a|>", expected);
    }
}
