package io.moeserve.runtime.tokenizer;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import java.time.Clock;
import java.time.ZonedDateTime;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;

/**
 * A Hugging Face chat template (Jinja2) compiled for rendering in Java with the output Python's jinja2 gives.
 */
public final class ChatTemplate {
    /*
     * What "the same output" means: transformers' apply_chat_template renders with
     * ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker,
     * loopcontrols]), a tojson filter that is json.dumps(ensure_ascii=False, ...), the globals raise_exception and
     * strftime_now, and the variables messages, tools, documents, add_generation_prompt, the tokenizer's special
     * tokens (bos_token, eos_token, ...) and any extra keyword arguments (enable_thinking, ...).
     *
     * Jinjava is close to jinja2 but not equal, and it fails quietly: errors go into a list and rendering goes on.
     * So this class (1) rewrites the source where Jinjava would misparse it (JinjaSourceRewriter), (2) gives
     * values Python behaviour (PyValues, PythonValueResolver, PyFilters, PyTests, PythonicInterpreter),
     * (3) refuses templates that use a filter or test Jinjava does not know, and (4) throws on any error Jinjava
     * records while rendering. Golden files rendered by Python (src/test/resources/chat-templates) pin the result.
     *
     * Known differences, pinned by ChatTemplateSnippetTest.JAVA_DIFFERS. Silent ones, which the templates we
     * know do not depend on with valid input: "a and b" yields a boolean instead of an operand (same truth
     * value); "%" with a negative operand follows Java's sign rule; "~" prints booleans as true/false; "+"
     * between a string and a number or None concatenates where Python raises TypeError; an attribute of an
     * undefined variable is undefined where Python raises; a tuple literal prints as a list. Loud ones
     * (ChatTemplateException although jinja2 renders): integer literals beyond a long, chained comparisons
     * (a < b < c), loop.previtem and loop.nextitem, loop filters (for x in y if z) and recursive loops,
     * {% filter %} blocks.
     */

    private static final Set<String> RESERVED = Set.of("messages", "tools", "documents", "add_generation_prompt");

    private final String source;
    private final String jinjavaSource;
    private final Map<String, Object> specialTokens;
    private final Clock clock;

    private ChatTemplate(String source, String jinjavaSource, Map<String, Object> specialTokens, Clock clock) {
        this.source = source;
        this.jinjavaSource = jinjavaSource;
        this.specialTokens = specialTokens;
        this.clock = clock;
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
        Objects.requireNonNull(source, "source");
        // jinja2 reads every line ending as \n and drops one trailing newline of the source.
        String normalized = source.replace("\r\n", "\n").replace('\r', '\n');
        if (normalized.endsWith("\n")) normalized = normalized.substring(0, normalized.length() - 1);
        JinjaSourceRewriter.Result rewritten = JinjaSourceRewriter.rewrite(normalized);
        var globals = JinjaEnvironment.jinjava().getGlobalContext();
        Set<String> unknown = new TreeSet<>();
        for (String f : rewritten.filters()) {
            if (globals.getFilter(f) == null) unknown.add("filter '" + f + "'");
        }
        for (String t : rewritten.tests()) {
            if (globals.getExpTest(t) == null) unknown.add("test '" + t + "'");
        }
        if (!unknown.isEmpty()) {
            throw new ChatTemplateException("chat template uses what this renderer does not have: " + unknown);
        }
        checkSyntax(rewritten.source());
        Map<String, Object> tokens = new HashMap<>();
        specialTokens.forEach((k, v) -> tokens.put(k, PyValues.fromJava(v)));
        return new ChatTemplate(source, rewritten.source(), Map.copyOf(tokens), Clock.systemDefaultZone());
    }

    private static void checkSyntax(String jinjavaSource) {
        JinjavaInterpreter interpreter = JinjaEnvironment.jinjava().newInterpreter();
        JinjavaInterpreter.pushCurrent(interpreter);
        try {
            interpreter.parse(jinjavaSource);
        } finally {
            JinjavaInterpreter.popCurrent();
        }
        if (!interpreter.getErrors().isEmpty()) throw failure("chat template does not parse", interpreter.getErrors());
    }

    /** The same template whose {@code strftime_now} reads this clock (for reproducible output). */
    public ChatTemplate withClock(Clock clock) {
        return new ChatTemplate(source, jinjavaSource, specialTokens, Objects.requireNonNull(clock));
    }

    /** The template as given. */
    public String source() {
        return source;
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
            context.put(k, PyValues.fromJava(v));
        });
        List<Object> messageValues = new ArrayList<>(messages.size());
        for (ChatMessage m : messages) messageValues.add(PyValues.fromJava(m.toTemplateValue()));
        context.put("messages", messageValues);
        context.put("tools", PyValues.fromJava(tools));
        context.put("documents", PyNone.INSTANCE);
        context.put("add_generation_prompt", addGenerationPrompt);
        return renderVariables(context);
    }

    /** Renders with exactly these template variables (already converted by {@link PyValues#fromJava}). */
    String renderVariables(Map<String, Object> variables) {
        Map<String, Object> context = new HashMap<>();
        variables.forEach((k, v) -> context.put(
                JinjaSourceRewriter.JUEL_RESERVED.contains(k) ? JinjaSourceRewriter.RESERVED_PREFIX + k : k, v));
        context.put(JinjaSourceRewriter.NONE_VARIABLE, PyNone.INSTANCE);
        context.put(TemplateFunctions.NOW_VARIABLE, ZonedDateTime.now(clock));
        RenderResult result = JinjaEnvironment.jinjava().renderForResult(jinjavaSource, context);
        if (result.hasErrors()) {
            for (TemplateError error : result.getErrors()) {
                for (Throwable t = error.getException(); t != null; t = t.getCause()) {
                    if (t instanceof TemplateRaisedException raised) {
                        throw new ChatTemplateException(raised.getMessage());
                    }
                }
            }
            throw failure("chat template failed to render", result.getErrors());
        }
        return result.getOutput();
    }

    private static ChatTemplateException failure(String what, List<TemplateError> errors) {
        StringBuilder message = new StringBuilder(what).append(':');
        for (TemplateError e : errors) {
            message.append("\n  line ").append(e.getLineno()).append(": ").append(e.getSeverity()).append(' ')
                    .append(e.getReason()).append(": ").append(e.getMessage());
        }
        Exception cause = errors.isEmpty() ? null : errors.getFirst().getException();
        return new ChatTemplateException(message.toString(), cause);
    }
}
