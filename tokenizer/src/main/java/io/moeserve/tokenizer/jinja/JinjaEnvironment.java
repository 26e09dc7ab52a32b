package io.moeserve.tokenizer.jinja;

import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.el.JinjavaInterpreterResolver;
import com.hubspot.jinjava.lib.exptest.ExpTest;
import com.hubspot.jinjava.lib.filter.Filter;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import jinjava.javax.el.CompositeELResolver;

/**
 * The Jinjava set-up that stands in for transformers' jinja2 environment (ImmutableSandboxedEnvironment with
 * trim_blocks, lstrip_blocks, loopcontrols and the generation tag; tojson, raise_exception and strftime_now).
 * One instance serves every template: Jinjava is thread-safe once configured.
 */
final class JinjaEnvironment {

    static final int MAX_MACRO_DEPTH = 100;
    private static final Jinjava JINJAVA = create();

    private JinjaEnvironment() {
    }

    static Jinjava jinjava() {
        return JINJAVA;
    }

    private static Jinjava create() {
        // Each switch below turns a Jinjava default into the jinja2 behaviour (Jinjava calls them "legacy" overrides).
        LegacyOverrides python = LegacyOverrides.newBuilder()
                .withEvaluateMapKeys(true)              // {key: v} uses the variable key, as Python does
                .withIterateOverMapKeys(true)           // for k in dict yields keys
                .withUseNaturalOperatorPrecedence(true) // Python's operator precedence
                .withParseWhitespaceControlStrictly(true)
                .withKeepNullableLoopValues(true)       // None items stay in loops
                .withHandleBackslashInQuotesOnly(true)
                .withWhitespaceRequiredWithinTokens(false) // {{x}} is valid
                .build();
        CompositeELResolver resolver = new CompositeELResolver();
        resolver.add(new PythonValueResolver());
        resolver.add(JinjavaInterpreterResolver.DEFAULT_RESOLVER_READ_ONLY);
        JinjavaConfig config = JinjavaConfig.newBuilder()
                // trim_blocks and lstrip_blocks are applied by JinjaSourceRewriter, with jinja2's exact rules.
                .withTrimBlocks(false)
                .withLstripBlocks(false)
                .withLegacyOverrides(python)
                .withElResolver(resolver)
                .withInterperterFactory(PythonicInterpreter.FACTORY)
                // Message text that contains "{{" must be printed, never rendered again (template injection).
                .withNestedInterpretationEnabled(false)
                // JinjaTemplate drops the source's trailing newline as jinja2 does; the output is left alone.
                .withKeepTrailingNewline(true)
                // jinja2 lets macros call themselves (gpt-oss renders nested JSON schemas so); Python's own
                // recursion limit stops a runaway one, and this depth, far beyond any real schema, stops ours.
                .withEnableRecursiveMacroCalls(true)
                .withMaxMacroRecursionDepth(MAX_MACRO_DEPTH)
                .build();
        Jinjava jinjava = new Jinjava(config);
        for (Filter filter : PyFilters.all()) jinjava.registerFilter(filter);
        for (ExpTest test : PyTests.all()) jinjava.registerExpTest(test);
        jinjava.registerTag(new GenerationTag());
        jinjava.registerFunction(new ELFunctionDefinition("", "raise_exception", TemplateFunctions.class,
                "raiseException", Object.class));
        jinjava.registerFunction(new ELFunctionDefinition("", "strftime_now", TemplateFunctions.class,
                "strftimeNow", Object.class));
        return jinjava;
    }
}
