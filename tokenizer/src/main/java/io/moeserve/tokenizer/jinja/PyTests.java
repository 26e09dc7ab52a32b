package io.moeserve.tokenizer.jinja;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.exptest.ExpTest;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * Jinja2's type and value tests ({@code is none}, {@code is string}, {@code is mapping}, ...) over the values
 * templates see here: {@link PyNone} is None, {@code null} is undefined, and a bool is a number but not an integer,
 * exactly as in Python. They replace Jinjava's tests of the same names.
 */
final class PyTests {

    private PyTests() {
    }

    /** One argument-free test. */
    private record Named(String name, Predicate<Object> predicate) implements ExpTest {
        @Override
        public String getName() {
            return name;
        }

        @Override
        public boolean evaluate(Object var, JinjavaInterpreter interpreter, Object... args) {
            if (args != null && args.length > 0) {
                throw new IllegalArgumentException("test '" + name + "' takes no arguments");
            }
            return predicate.test(PyValues.unwrap(var));
        }
    }

    /** Jinja2's "x is in(seq)": Python's in operator, so a substring counts too. */
    private record In() implements ExpTest {
        @Override
        public String getName() {
            return "in";
        }

        @Override
        public boolean evaluate(Object var, JinjavaInterpreter interpreter, Object... args) {
            if (args == null || args.length != 1) throw new IllegalArgumentException("test 'in' takes one argument");
            return switch (PyValues.unwrap(args[0])) {
                case CharSequence s when PyValues.isString(var) -> s.toString().contains(var.toString());
                case List<?> l -> l.stream().anyMatch(item -> PyContainerMethods.pyEquals(item, var));
                case Map<?, ?> m -> PyValues.isString(var) && m.containsKey(var.toString());
                case Object o -> throw new IllegalArgumentException(
                        "argument of type '" + PyCallArgs.typeName(o) + "' is not iterable");
            };
        }
    }

    /** Jinja2's "x is sameas(y)": the same object, looking through Jinjava's wrappers. */
    private record SameAs() implements ExpTest {
        @Override
        public String getName() {
            return "sameas";
        }

        @Override
        public boolean evaluate(Object var, JinjavaInterpreter interpreter, Object... args) {
            if (args == null || args.length != 1) {
                throw new IllegalArgumentException("test 'sameas' takes one argument");
            }
            return PyValues.unwrap(var) == PyValues.unwrap(args[0]);
        }
    }

    static List<ExpTest> all() {
        return List.of(
                new In(),
                new SameAs(),
                new Named("defined", v -> v != null),
                new Named("undefined", v -> v == null),
                new Named("none", v -> v instanceof PyNone),
                new Named("string", PyValues::isString),
                new Named("boolean", v -> v instanceof Boolean),
                new Named("true", v -> Boolean.TRUE.equals(v)),
                new Named("false", v -> Boolean.FALSE.equals(v)),
                new Named("number", v -> v instanceof Number || v instanceof Boolean),
                new Named("integer", v -> v instanceof Number n && PyValues.isInteger(n)),
                new Named("float", v -> v instanceof Double || v instanceof Float),
                new Named("mapping", v -> v instanceof Map<?, ?>),
                new Named("iterable", v -> v instanceof List<?> || v instanceof Map<?, ?> || PyValues.isString(v)),
                new Named("sequence", v -> v instanceof List<?> || v instanceof Map<?, ?> || PyValues.isString(v)));
    }
}
