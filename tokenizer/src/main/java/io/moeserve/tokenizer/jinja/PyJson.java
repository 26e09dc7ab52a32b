package io.moeserve.tokenizer.jinja;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Python's {@code json.dumps(x, ensure_ascii, indent, separators, sort_keys)}, byte for byte, which is what
 * transformers' {@code tojson} filter is. Tool schemas and tool-call arguments reach the model through it, so the
 * spacing matters: {@code {"a": 1, "b": [1, 2]}} by default, {@code ","} between items when indenting.
 */
final class PyJson {

    private final boolean ensureAscii;
    private final String indent;
    private final String itemSeparator;
    private final String keySeparator;
    private final boolean sortKeys;

    /**
     * @param indent     null for one line, else the string repeated per level (Python turns an int into spaces)
     * @param separators null for Python's defaults, else {item separator, key separator}
     */
    PyJson(boolean ensureAscii, String indent, String[] separators, boolean sortKeys) {
        this.ensureAscii = ensureAscii;
        this.indent = indent;
        this.itemSeparator = separators != null ? separators[0] : indent == null ? ", " : ",";
        this.keySeparator = separators != null ? separators[1] : ": ";
        this.sortKeys = sortKeys;
    }

    String dumps(Object value) {
        StringBuilder out = new StringBuilder();
        write(out, value, 0);
        return out.toString();
    }

    private void write(StringBuilder out, Object value, int level) {
        switch (PyValues.unwrap(value)) {
            case null -> out.append("null");
            case PyNone n -> out.append("null");
            case CharSequence s -> writeString(out, s.toString());
            case Boolean b -> out.append(b ? "true" : "false");
            case Double d -> out.append(floatJson(d));
            case Float f -> out.append(floatJson(f));
            case Number n when PyValues.isInteger(n) -> out.append(n);
            case Map<?, ?> m -> writeObject(out, m, level);
            case List<?> l -> writeArray(out, l, level);
            case Map.Entry<?, ?> e -> writeArray(out, List.of(e.getKey(), e.getValue()), level);
            case Object o -> throw new IllegalArgumentException(
                    "Object of type " + o.getClass().getSimpleName() + " is not JSON serializable");
        }
    }

    private static String floatJson(double d) {
        if (Double.isNaN(d)) return "NaN";
        if (Double.isInfinite(d)) return d > 0 ? "Infinity" : "-Infinity";
        return PyValues.floatRepr(d);
    }

    private void writeArray(StringBuilder out, List<?> list, int level) {
        if (list.isEmpty()) {
            out.append("[]");
            return;
        }
        out.append('[');
        for (int i = 0; i < list.size(); i++) {
            if (i > 0) out.append(itemSeparator);
            newline(out, level + 1);
            write(out, list.get(i), level + 1);
        }
        newline(out, level);
        out.append(']');
    }

    private void writeObject(StringBuilder out, Map<?, ?> map, int level) {
        if (map.isEmpty()) {
            out.append("{}");
            return;
        }
        List<Map.Entry<?, ?>> entries = new ArrayList<>(map.entrySet());
        if (sortKeys) {
            // Python compares str by code point; String.compareTo compares UTF-16 units.
            entries.sort((a, b) -> compareCodePoints(jsonKey(a.getKey()), jsonKey(b.getKey())));
        }
        out.append('{');
        boolean first = true;
        for (Map.Entry<?, ?> e : entries) {
            if (!first) out.append(itemSeparator);
            first = false;
            newline(out, level + 1);
            writeString(out, jsonKey(e.getKey()));
            out.append(keySeparator);
            write(out, e.getValue(), level + 1);
        }
        newline(out, level);
        out.append('}');
    }

    /** json.dumps turns non-string keys into strings the JSON way (True -> "true"). */
    private static String jsonKey(Object key) {
        return switch (key) {
            case CharSequence s -> s.toString();
            case Boolean b -> b ? "true" : "false";
            case null -> "null";
            case PyNone n -> "null";
            case Double d -> floatJson(d);
            case Object o -> o.toString();
        };
    }

    private static int compareCodePoints(String a, String b) {
        int i = 0;
        int j = 0;
        while (i < a.length() && j < b.length()) {
            int ca = a.codePointAt(i);
            int cb = b.codePointAt(j);
            if (ca != cb) return Integer.compare(ca, cb);
            i += Character.charCount(ca);
            j += Character.charCount(cb);
        }
        return Integer.compare(a.length() - i, b.length() - j);
    }

    private void newline(StringBuilder out, int level) {
        if (indent != null) {
            out.append('\n');
            out.append(indent.repeat(level));
        }
    }

    private void writeString(StringBuilder out, String s) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                case '\b' -> out.append("\\b");
                case '\f' -> out.append("\\f");
                default -> {
                    // ensure_ascii escapes everything outside printable ASCII, one UTF-16 unit at a time,
                    // which yields surrogate pairs for characters beyond the BMP exactly as Python does.
                    if (c < 0x20 || (ensureAscii && c > 0x7e)) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }
}
