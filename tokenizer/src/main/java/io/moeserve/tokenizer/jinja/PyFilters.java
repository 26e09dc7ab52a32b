package io.moeserve.tokenizer.jinja;

import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.lib.filter.Filter;
import com.hubspot.jinjava.util.ObjectTruthValue;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * Jinja2's built-in filters where Jinjava's differ from them: transformers' {@code tojson}, and the string and
 * sequence filters whose Jinjava versions count UTF-16 units, print Java values, treat None as undefined, or round
 * half up. They replace Jinjava's filters of the same names.
 */
final class PyFilters {

    /** Jinja2's title filter splits words here (do_title's _word_beginning_split_re). */
    private static final Pattern WORD_BEGINNING = Pattern.compile("([-\\s({\\[<]+)");

    private PyFilters() {
    }

    @FunctionalInterface
    private interface Body {
        Object apply(Object value, PyCallArgs args);
    }

    /** One named filter; Jinjava calls the Object[] variant, which binds arguments the Python way. */
    private record Named(String name, Body body) implements Filter {
        @Override
        public String getName() {
            return name;
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
            return body.apply(var, new PyCallArgs(name, args, kwargs));
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
            return body.apply(var, new PyCallArgs(name, args));
        }
    }

    static List<Filter> all() {
        return List.of(
                new Named("tojson", PyFilters::tojson),
                new Named("length", (v, a) -> len(v, a.expect(0))),
                new Named("count", (v, a) -> len(v, a.expect(0))),
                new Named("string", (v, a) -> PyValues.wrapString(PyValues.str(v))),
                new Named("trim", (v, a) -> PyValues.wrapString(PyStringMethods.strip(
                        PyValues.str(v), a.expect(0, "chars").optionalString(0, "chars"), true, true))),
                new Named("upper", (v, a) -> PyValues.wrapString(PyValues.str(v).toUpperCase(Locale.ROOT))),
                new Named("lower", (v, a) -> PyValues.wrapString(PyValues.str(v).toLowerCase(Locale.ROOT))),
                new Named("capitalize", (v, a) -> PyStringMethods.invoke(PyValues.str(v), "capitalize", a.expect(0))),
                new Named("title", (v, a) -> PyValues.wrapString(title(PyValues.str(v)))),
                new Named("replace", (v, a) -> PyStringMethods.invoke(PyValues.str(v), "replace",
                        a.expect(2, "old", "new", "count"))),
                new Named("join", PyFilters::join),
                new Named("list", (v, a) -> list(v)),
                new Named("reverse", PyFilters::reverse),
                new Named("default", PyFilters::defaultValue),
                new Named("d", PyFilters::defaultValue),
                new Named("items", PyFilters::items),
                new Named("indent", PyFilters::indent),
                new Named("round", PyFilters::round),
                new Named("max", (v, a) -> extreme(v, a, true)),
                new Named("min", (v, a) -> extreme(v, a, false)));
    }

    private static Object tojson(Object value, PyCallArgs args) {
        args.expect(0, "ensure_ascii", "indent", "separators", "sort_keys");
        Object indent = args.get(1, "indent");
        String indentText = switch (indent) {
            case null -> null;
            case PyNone n -> null;
            case CharSequence s -> s.toString();
            default -> " ".repeat((int) Math.max(0, args.integer(1, "indent", 0)));
        };
        Object separators = PyValues.unwrap(args.get(2, "separators"));
        String[] pair = null;
        if (separators instanceof List<?> l && l.size() == 2) {
            pair = new String[] {PyValues.str(l.get(0)), PyValues.str(l.get(1))};
        } else if (separators != null && !(separators instanceof PyNone)) {
            throw new IllegalArgumentException("tojson separators must be a pair of strings");
        }
        PyJson json = new PyJson(args.bool(0, "ensure_ascii", false), indentText, pair,
                args.bool(3, "sort_keys", false));
        return json.dumps(value);
    }

    /** Python's len(): code points for strings, entries for lists and dicts. */
    private static Object len(Object value, PyCallArgs args) {
        return switch (PyValues.unwrap(value)) {
            case CharSequence s -> (long) s.toString().codePointCount(0, s.length());
            case List<?> l -> (long) l.size();
            case Map<?, ?> m -> (long) m.size();
            case null -> 0L; // Jinja2's Undefined has length 0
            case Object o -> throw new IllegalArgumentException(
                    "object of type '" + PyCallArgs.typeName(o) + "' has no len()");
        };
    }

    private static Object join(Object value, PyCallArgs args) {
        args.expect(0, "d", "attribute");
        String separator = args.get(0, "d") == null ? "" : PyValues.str(args.get(0, "d"));
        Object attribute = args.get(1, "attribute");
        StringBuilder out = new StringBuilder();
        boolean first = true;
        for (Object item : iterate(value)) {
            if (!first) out.append(separator);
            first = false;
            Object shown = item;
            if (attribute != null && PyValues.unwrap(item) instanceof Map<?, ?> m) shown = m.get(attribute.toString());
            out.append(PyValues.str(shown));
        }
        return PyValues.wrapString(out.toString());
    }

    private static List<Object> list(Object value) {
        return new ArrayList<>(iterate(value));
    }

    private static Object reverse(Object value, PyCallArgs args) {
        args.expect(0);
        if (PyValues.unwrap(value) instanceof CharSequence s) {
            return PyValues.wrapString(new StringBuilder(s).reverse().toString());
        }
        List<Object> items = new ArrayList<>(iterate(value));
        Collections.reverse(items);
        return items;
    }

    /** Jinja2's default: only an undefined value (or, with boolean=true, a false one) is replaced; None is kept. */
    private static Object defaultValue(Object value, PyCallArgs args) {
        args.expect(0, "default_value", "boolean");
        Object fallback = args.get(0, "default_value");
        if (fallback == null) fallback = "";
        boolean onFalse = args.bool(1, "boolean", false);
        if (value == null || (onFalse && !ObjectTruthValue.evaluate(value))) return fallback;
        return value;
    }

    private static Object items(Object value, PyCallArgs args) {
        args.expect(0);
        return switch (PyValues.unwrap(value)) {
            case null -> List.of();
            case Map<?, ?> m -> PyContainerMethods.invokeOnDict(m, "items", new PyCallArgs("items", null));
            case Object o -> throw new IllegalArgumentException("Can only get item pairs from a mapping.");
        };
    }

    /** Jinja2 3.1's do_indent, including its quirk of dropping one trailing newline. */
    private static Object indent(Object value, PyCallArgs args) {
        args.expect(0, "width", "first", "blank");
        Object width = args.get(0, "width");
        String indention = PyValues.isString(width) ? width.toString()
                : " ".repeat((int) args.integer(0, "width", 4));
        boolean first = args.bool(1, "first", false);
        boolean blank = args.bool(2, "blank", false);
        String s = PyValues.str(value) + "\n";
        @SuppressWarnings("unchecked")
        List<Object> lines = (List<Object>) PyStringMethods.invoke(s, "splitlines", new PyCallArgs("splitlines", null));
        StringBuilder rv = new StringBuilder();
        if (blank) {
            for (int i = 0; i < lines.size(); i++) {
                if (i > 0) rv.append('\n').append(indention);
                rv.append(lines.get(i));
            }
        } else {
            rv.append(lines.isEmpty() ? "" : lines.getFirst());
            for (int i = 1; i < lines.size(); i++) {
                String line = lines.get(i).toString();
                rv.append('\n').append(line.isEmpty() ? "" : indention + line);
            }
        }
        return PyValues.wrapString(first ? indention + rv : rv.toString());
    }

    /** Jinja2's round: Python's round() (ties to even on the exact binary value), or ceil/floor; a float. */
    private static Object round(Object value, PyCallArgs args) {
        args.expect(0, "precision", "method");
        int precision = (int) args.integer(0, "precision", 0);
        String method = args.get(1, "method") == null ? "common" : args.string(1, "method");
        if (!(PyValues.unwrap(value) instanceof Number n)) {
            throw new IllegalArgumentException("round() needs a number, not " + PyCallArgs.typeName(value));
        }
        if (method.equals("common") && PyValues.isInteger(n) && precision >= 0) return n; // round(int) is an int
        RoundingMode mode = switch (method) {
            case "common" -> RoundingMode.HALF_EVEN;
            case "ceil" -> RoundingMode.CEILING;
            case "floor" -> RoundingMode.FLOOR;
            default -> throw new IllegalArgumentException("method must be common, ceil or floor");
        };
        BigDecimal exact = n instanceof Double || n instanceof Float ? new BigDecimal(n.doubleValue())
                : new BigDecimal(n.toString());
        return exact.setScale(precision, mode).doubleValue();
    }

    /** Jinja2's max/min: by Python ordering, strings case-insensitively unless asked; undefined when empty. */
    private static Object extreme(Object value, PyCallArgs args, boolean max) {
        args.expect(0, "case_sensitive", "attribute");
        boolean caseSensitive = args.bool(0, "case_sensitive", false);
        Object attribute = args.get(1, "attribute");
        Object best = null;
        Object bestKey = null;
        for (Object item : iterate(value)) {
            Object key = attribute != null && PyValues.unwrap(item) instanceof Map<?, ?> m
                    ? m.get(attribute.toString()) : item;
            if (!caseSensitive && PyValues.isString(key)) key = key.toString().toLowerCase(Locale.ROOT);
            if (best == null || (max ? compare(key, bestKey) > 0 : compare(key, bestKey) < 0)) {
                best = item;
                bestKey = key;
            }
        }
        return best;
    }

    private static int compare(Object a, Object b) {
        Object x = PyValues.unwrap(a);
        Object y = PyValues.unwrap(b);
        if (x instanceof Number n && y instanceof Number m) return Double.compare(n.doubleValue(), m.doubleValue());
        if (x instanceof CharSequence s && y instanceof CharSequence t) return s.toString().compareTo(t.toString());
        throw new IllegalArgumentException("'<' not supported between instances of '" + PyCallArgs.typeName(x)
                + "' and '" + PyCallArgs.typeName(y) + "'");
    }

    /** Jinja2's do_title: capitalise the first letter of each word, lower-case the rest. */
    private static String title(String s) {
        StringBuilder out = new StringBuilder();
        var m = WORD_BEGINNING.matcher(s);
        int last = 0;
        while (m.find()) {
            appendCapitalized(out, s.substring(last, m.start()));
            out.append(m.group());
            last = m.end();
        }
        appendCapitalized(out, s.substring(last));
        return out.toString();
    }

    private static void appendCapitalized(StringBuilder out, String word) {
        if (word.isEmpty()) return;
        int first = word.codePointAt(0);
        out.append(Character.toString(first).toUpperCase(Locale.ROOT))
                .append(word.substring(Character.charCount(first)).toLowerCase(Locale.ROOT));
    }

    /** What a Python for loop over the value yields: items of a list, keys of a dict, characters of a string. */
    static List<?> iterate(Object value) {
        return switch (PyValues.unwrap(value)) {
            case null -> List.of();
            case List<?> l -> l;
            case Map<?, ?> m -> new ArrayList<>(m.keySet());
            case CharSequence s -> s.toString().codePoints().mapToObj(cp -> PyValues.wrapString(Character.toString(cp)))
                    .toList();
            case Iterable<?> it -> {
                List<Object> items = new ArrayList<>();
                it.forEach(items::add);
                yield items;
            }
            case Object o -> throw new IllegalArgumentException(
                    "'" + PyCallArgs.typeName(o) + "' object is not iterable");
        };
    }
}
