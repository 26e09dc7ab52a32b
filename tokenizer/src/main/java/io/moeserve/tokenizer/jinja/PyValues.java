package io.moeserve.tokenizer.jinja;

import com.hubspot.jinjava.objects.collections.PyList;
import com.hubspot.jinjava.objects.collections.PyMap;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Python's view of template values: converting Java inputs into the values templates see, and Python's
 * {@code str()} and {@code repr()} of them (what {@code {{ x }}} prints).
 *
 * <p>Inputs are JSON-like: strings, numbers, booleans, null, maps with string keys, lists. Java {@code null} becomes
 * {@link PyNone}; Java {@code null} itself is left for "undefined", as in Jinjava.
 */
final class PyValues {

    private PyValues() {
    }

    /** Converts a JSON-like Java value into what the template sees; rejects anything else. */
    static Object fromJava(Object value) {
        return switch (value) {
            case null -> PyNone.INSTANCE;
            case PyNone none -> none;
            case CharSequence s -> wrapString(s.toString());
            case Character c -> String.valueOf(c);
            case Boolean b -> b;
            case Float f -> f.doubleValue();
            case BigDecimal d -> d.doubleValue();
            case Number n -> n;
            case Optional<?> o -> fromJava(o.orElse(null));
            case Map<?, ?> m -> {
                Map<String, Object> out = new LinkedHashMap<>();
                m.forEach((k, v) -> {
                    if (!(k instanceof CharSequence)) {
                        throw new IllegalArgumentException("template maps need string keys, got " + k);
                    }
                    out.put(k.toString(), fromJava(v));
                });
                yield out;
            }
            case Collection<?> c -> {
                List<Object> out = new ArrayList<>(c.size());
                for (Object item : c) out.add(fromJava(item));
                yield out;
            }
            case Object[] array -> fromJava(Arrays.asList(array));
            default -> throw new IllegalArgumentException("unsupported template value of " + value.getClass()
                    + " (use String, Number, Boolean, null, Map or List)");
        };
    }

    /** A string as templates see it: a plain String except where Jinjava's truth test would get it wrong. */
    static Object wrapString(String s) {
        return TruthyFalseString.needsWrapping(s) ? new TruthyFalseString(s) : s;
    }

    static boolean isString(Object value) {
        return value instanceof String || value instanceof TruthyFalseString;
    }

    static boolean isInteger(Object value) {
        return value instanceof Integer || value instanceof Long || value instanceof Short || value instanceof Byte
                || value instanceof BigInteger;
    }

    /** Removes Jinjava's collection wrappers so callers can look at what they hold. */
    static Object unwrap(Object value) {
        if (value instanceof PyList l) return l.toList();
        if (value instanceof PyMap m) return m.toMap();
        return value;
    }

    /** Python's {@code str(value)}. */
    static String str(Object value) {
        return switch (unwrap(value)) {
            case null -> "";
            case CharSequence s -> s.toString();
            case List<?> l -> repr(l);
            case Map<?, ?> m -> repr(m);
            case Map.Entry<?, ?> e -> repr(e);
            case Boolean b -> b ? "True" : "False";
            case Double d -> floatRepr(d);
            case Float f -> floatRepr(f);
            case Object o -> o.toString();
        };
    }

    /** Python's {@code repr(value)}. */
    static String repr(Object value) {
        StringBuilder out = new StringBuilder();
        appendRepr(out, value);
        return out.toString();
    }

    private static void appendRepr(StringBuilder out, Object value) {
        switch (unwrap(value)) {
            case null -> out.append("None");
            case CharSequence s -> appendStringRepr(out, s.toString());
            case PyTuple t -> {
                out.append('(');
                for (int i = 0; i < t.size(); i++) {
                    if (i > 0) out.append(", ");
                    appendRepr(out, t.get(i));
                }
                out.append(t.size() == 1 ? ",)" : ")");
            }
            case List<?> l -> {
                out.append('[');
                for (int i = 0; i < l.size(); i++) {
                    if (i > 0) out.append(", ");
                    appendRepr(out, l.get(i));
                }
                out.append(']');
            }
            case Map<?, ?> m -> {
                out.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    if (!first) out.append(", ");
                    first = false;
                    appendRepr(out, e.getKey());
                    out.append(": ");
                    appendRepr(out, e.getValue());
                }
                out.append('}');
            }
            case Map.Entry<?, ?> e -> appendRepr(out, new PyTuple(e.getKey(), e.getValue()));
            case Object o -> out.append(str(o));
        }
    }

    /** Python quotes with ' unless the text contains ' and no ", and escapes what is not printable. */
    private static void appendStringRepr(StringBuilder out, String s) {
        char quote = s.indexOf('\'') >= 0 && s.indexOf('"') < 0 ? '"' : '\'';
        out.append(quote);
        s.codePoints().forEach(cp -> {
            switch (cp) {
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (cp == quote) {
                        out.append('\\').append((char) cp);
                    } else if (isPrintable(cp)) {
                        out.appendCodePoint(cp);
                    } else if (cp < 0x100) {
                        out.append(String.format("\\x%02x", cp));
                    } else if (cp < 0x10000) {
                        out.append(String.format("\\u%04x", cp));
                    } else {
                        out.append(String.format("\\U%08x", cp));
                    }
                }
            }
        });
        out.append(quote);
    }

    /** Python's str.isprintable for one code point: not a control, format, separator (but space) or unassigned. */
    private static boolean isPrintable(int cp) {
        if (cp == ' ') return true;
        return switch (Character.getType(cp)) {
            case Character.CONTROL, Character.FORMAT, Character.SURROGATE, Character.PRIVATE_USE,
                 Character.UNASSIGNED, Character.LINE_SEPARATOR, Character.PARAGRAPH_SEPARATOR,
                 Character.SPACE_SEPARATOR -> false;
            default -> true;
        };
    }

    /**
     * Python's {@code repr(float)}: the shortest digits that round-trip (Java's {@link Double#toString} finds the
     * same digits), laid out as Python does: positional between 1e-4 and 1e16, otherwise {@code 1.5e-07} style.
     */
    static String floatRepr(double d) {
        if (Double.isNaN(d)) return "nan";
        if (Double.isInfinite(d)) return d > 0 ? "inf" : "-inf";
        if (d == 0) return (1 / d < 0) ? "-0.0" : "0.0";
        BigDecimal exact = new BigDecimal(Double.toString(Math.abs(d))).stripTrailingZeros();
        String digits = exact.unscaledValue().toString();
        // Decimal point position relative to the first digit: value = 0.<digits> * 10^decpt.
        int decpt = digits.length() - exact.scale();
        StringBuilder out = new StringBuilder(d < 0 ? "-" : "");
        if (decpt > -4 && decpt <= 16) {
            if (decpt <= 0) {
                out.append("0.").append("0".repeat(-decpt)).append(digits);
            } else if (decpt >= digits.length()) {
                out.append(digits).append("0".repeat(decpt - digits.length())).append(".0");
            } else {
                out.append(digits, 0, decpt).append('.').append(digits, decpt, digits.length());
            }
        } else {
            out.append(digits.charAt(0));
            if (digits.length() > 1) out.append('.').append(digits, 1, digits.length());
            int exponent = decpt - 1;
            out.append('e').append(exponent < 0 ? '-' : '+');
            String e = Integer.toString(Math.abs(exponent));
            out.append(e.length() < 2 ? "0" + e : e);
        }
        return out.toString();
    }
}
