package io.moeserve.tokenizer;

import io.moeserve.tokenizer.jinja.JinjaTemplate;
import io.moeserve.tokenizer.jinja.TemplateException;
import java.time.Clock;
import java.time.ZonedDateTime;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * A Hugging Face chat template (Jinja2), rendered as transformers' {@code apply_chat_template} renders it.
 *
 * <p>transformers renders with ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
 * extensions=[AssistantTracker, loopcontrols]), a tojson filter that is json.dumps(ensure_ascii=False, ...), the
 * globals raise_exception and strftime_now, and the variables messages, tools, documents, add_generation_prompt,
 * the tokenizer's special tokens (bos_token, eos_token, ...) and any extra keyword arguments (enable_thinking, ...).
 * This class supplies those variables; {@link JinjaTemplate} renders them with jinja2's semantics. Golden files
 * rendered by Python (src/test/resources/chat-templates) pin the result.
 *
 * <p>Known differences, pinned by JinjaTemplateSnippetTest.JAVA_DIFFERS. Silent ones, which the templates we
 * know do not depend on with valid input: "a and b" yields a boolean instead of an operand (same truth value);
 * "%" with a negative operand follows Java's sign rule; "~" prints booleans as true/false; "+" between a string
 * and a number or None concatenates where Python raises TypeError; an attribute of an undefined variable is
 * undefined where Python raises; {@code x in None} is false where Python raises TypeError (so gpt-oss's template
 * takes an assistant tool call whose content is null, as OpenAI clients send it, where jinja2 refuses it); a tuple
 * literal prints as a list. Loud ones (ChatTemplateException although
 * jinja2 renders): integer literals beyond a long, chained comparisons (a < b < c), loop.previtem and
 * loop.nextitem, loop filters (for x in y if z) and recursive loops, {% filter %} blocks.
 *
 * <p>Immutable and thread-safe.
 */
public final class ChatTemplate {
    private static final Set<String> RESERVED = Set.of("messages", "tools", "documents", "add_generation_prompt");
    /** How a template reads a message's "thinking" key: attribute, subscript, or a membership test. */
    private static final Pattern READS_THINKING =
            Pattern.compile("message\\s*\\.\\s*thinking\\b|message\\s*\\[\\s*['\"]thinking['\"]\\s*]|['\"]thinking['\"]\\s+in\\s+message\\b");

    private final String source;
    private final JinjaTemplate template;
    private final Map<String, Object> specialTokens;
    private final Clock clock;
    private final String reasoningKey;

    private ChatTemplate(String source, JinjaTemplate template, Map<String, Object> specialTokens, Clock clock) {
        this.source = source;
        this.template = template;
        this.specialTokens = specialTokens;
        this.clock = clock;
        this.reasoningKey = READS_THINKING.matcher(source).find() ? "thinking" : "reasoning_content";
    }

    /** Compiles a template with no special-token variables. */
    public static ChatTemplate compile(String source) {
        return compile(source, Map.of());
    }

    /**
     * Compiles a template.
     *
     * @param specialTokens variables such as bos_token and eos_token (transformers' special_tokens_map)
     * @throws ChatTemplateException if the template does not parse or uses a filter, test or tag that is missing
     */
    public static ChatTemplate compile(String source, Map<String, ?> specialTokens) {
        try {
            return new ChatTemplate(source, JinjaTemplate.compile(source), Collections.unmodifiableMap(new HashMap<>(specialTokens)),
                    Clock.systemDefaultZone());
        } catch (TemplateException e) {
            throw new ChatTemplateException(e.getMessage(), e);
        }
    }

    /** The same template whose {@code strftime_now} reads this clock (for reproducible output). */
    public ChatTemplate withClock(Clock clock) {
        return new ChatTemplate(source, template, specialTokens, Objects.requireNonNull(clock));
    }

    /** The template as given. */
    public String source() {
        return source;
    }

    /**
     * The message key under which this template reads an assistant's reasoning: {@code thinking} where the
     * template reads {@code message.thinking}, {@code message['thinking']} or tests {@code "thinking" in message}
     * (gpt-oss's), else {@code reasoning_content} (Qwen3's, DeepSeek-R1's, and what OpenAI-style requests carry).
     * Templates that read neither ignore reasoning either way.
     */
    public String reasoningKey() {
        return reasoningKey;
    }

    /** Renders messages without tools or extra variables. */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt) {
        return render(messages, null, addGenerationPrompt, Map.of());
    }

    /**
     * Renders a conversation.
     *
     * @param tools      OpenAI-style tool definitions ({@code {"type": "function", "function": {...}}}); null for
     *                   none (the template then sees None, as with transformers)
     * @param extraVariables further template variables such as {@code enable_thinking}; they override special
     *                   tokens, and may not be named messages, tools, documents or add_generation_prompt
     * @throws ChatTemplateException if rendering fails in any way, including the template's raise_exception
     */
    public String render(List<ChatMessage> messages, List<? extends Map<String, ?>> tools,
                         boolean addGenerationPrompt, Map<String, ?> extraVariables) {
        Map<String, Object> context = new HashMap<>(specialTokens);
        extraVariables.forEach((k, v) -> {
            if (RESERVED.contains(k)) throw new IllegalArgumentException("'" + k + "' cannot be an extra variable");
            context.put(k, v);
        });
        List<Object> messageValues = new ArrayList<>(messages.size());
        for (ChatMessage m : messages) messageValues.add(m.toTemplateValue(reasoningKey));
        context.put("messages", messageValues);
        context.put("tools", tools);
        context.put("documents", null);
        context.put("add_generation_prompt", addGenerationPrompt);
        try {
            return template.render(context, ZonedDateTime.now(clock));
        } catch (TemplateException e) {
            throw new ChatTemplateException(e.getMessage(), e);
        }
    }
}
