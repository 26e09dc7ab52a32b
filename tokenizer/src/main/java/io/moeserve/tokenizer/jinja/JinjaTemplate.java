package io.moeserve.tokenizer.jinja;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import java.time.ZonedDateTime;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;

/**
 * A Jinja2 template compiled for rendering in Java with the output Python's jinja2 gives: the one entry point of
 * this package's Python emulation.
 *
 * <p>Jinjava is close to jinja2 but not equal, and it fails quietly: errors go into a list and rendering goes on.
 * So compiling (1) rewrites the source where Jinjava would misparse it ({@link JinjaSourceRewriter}), (2) refuses
 * templates that use a filter or test Jinjava does not know, and (3) checks the syntax; rendering gives values
 * Python behaviour ({@link PyValues}, {@link PythonValueResolver}, {@link PyFilters}, {@link PyTests},
 * {@link PythonicInterpreter}) and throws on any error Jinjava records. The environment is transformers'
 * ({@link JinjaEnvironment}): trim_blocks, lstrip_blocks, loop controls, the generation tag, raise_exception and
 * strftime_now.
 *
 * <p>Immutable and thread-safe.
 */
public final class JinjaTemplate {
    private final String jinjavaSource;

    private JinjaTemplate(String jinjavaSource) {
        this.jinjavaSource = jinjavaSource;
    }

    /**
     * Compiles a template.
     *
     * @throws TemplateException if the template does not parse or uses a filter, test or tag that is missing
     */
    public static JinjaTemplate compile(String source) {
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
            throw new TemplateException("chat template uses what this renderer does not have: " + unknown);
        }
        checkSyntax(rewritten.source());
        return new JinjaTemplate(rewritten.source());
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

    /**
     * Renders with these variables, given as plain Java values (maps, lists, strings, numbers, booleans, null for
     * None), which are given Python's behaviour here.
     *
     * @param now what {@code strftime_now} formats
     * @throws TemplateException if rendering fails in any way, including the template's raise_exception
     */
    public String render(Map<String, ?> variables, ZonedDateTime now) {
        Map<String, Object> context = new HashMap<>();
        variables.forEach((k, v) -> context.put(
                JinjaSourceRewriter.JUEL_RESERVED.contains(k) ? JinjaSourceRewriter.RESERVED_PREFIX + k : k,
                PyValues.fromJava(v)));
        context.put(JinjaSourceRewriter.NONE_VARIABLE, PyNone.INSTANCE);
        context.put(TemplateFunctions.NOW_VARIABLE, now);
        RenderResult result = JinjaEnvironment.jinjava().renderForResult(jinjavaSource, context);
        if (result.hasErrors()) {
            for (TemplateError error : result.getErrors()) {
                for (Throwable t = error.getException(); t != null; t = t.getCause()) {
                    if (t instanceof TemplateRaisedException raised) throw new TemplateException(raised.getMessage());
                }
            }
            throw failure("chat template failed to render", result.getErrors());
        }
        return result.getOutput();
    }

    private static TemplateException failure(String what, List<TemplateError> errors) {
        StringBuilder message = new StringBuilder(what).append(':');
        for (TemplateError e : errors) {
            message.append("\n  line ").append(e.getLineno()).append(": ").append(e.getSeverity()).append(' ')
                    .append(e.getReason()).append(": ").append(e.getMessage());
        }
        Exception cause = errors.isEmpty() ? null : errors.getFirst().getException();
        return new TemplateException(message.toString(), cause);
    }
}
