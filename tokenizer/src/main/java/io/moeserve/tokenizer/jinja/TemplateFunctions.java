package io.moeserve.tokenizer.jinja;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import java.time.ZonedDateTime;

/**
 * The global functions transformers adds to a chat template's environment: {@code raise_exception} and
 * {@code strftime_now}. Jinjava calls them as static methods.
 */
final class TemplateFunctions {

    /** Context variable holding the instant {@code strftime_now} reports, fixed once per render. */
    static final String NOW_VARIABLE = "_py_now_";

    private TemplateFunctions() {
    }

    public static Object raiseException(Object message) {
        throw new TemplateRaisedException(PyValues.str(message));
    }

    public static Object strftimeNow(Object format) {
        if (!PyValues.isString(format)) throw new IllegalArgumentException("strftime_now() argument must be str");
        JinjavaInterpreter interpreter = JinjavaInterpreter.getCurrent();
        Object now = interpreter == null ? null : interpreter.getContext().get(NOW_VARIABLE);
        if (!(now instanceof ZonedDateTime time)) throw new IllegalStateException("strftime_now has no clock");
        return PyValues.wrapString(PyStrftime.format(time, format.toString()));
    }
}
