package io.moeserve.tokenizer.jinja;

import java.util.List;
import java.util.Map;

/**
 * Python's {@code str.format} for the forms chat templates use: {@code {}}, {@code {0}}, {@code {name}},
 * the conversions {@code !s} and {@code !r}, and doubled braces. A format spec such as {@code {:>8}} or a field
 * path such as {@code {0.name}} is refused rather than approximated.
 */
final class PyFormat {

    private PyFormat() {
    }

    static String format(String pattern, List<Object> args, Map<String, Object> kwargs) {
        StringBuilder out = new StringBuilder();
        int auto = 0;
        boolean manual = false;
        int i = 0;
        while (i < pattern.length()) {
            char c = pattern.charAt(i);
            if (c == '}') {
                if (i + 1 < pattern.length() && pattern.charAt(i + 1) == '}') {
                    out.append('}');
                    i += 2;
                    continue;
                }
                throw new IllegalArgumentException("Single '}' encountered in format string");
            }
            if (c != '{') {
                out.append(c);
                i++;
                continue;
            }
            if (i + 1 < pattern.length() && pattern.charAt(i + 1) == '{') {
                out.append('{');
                i += 2;
                continue;
            }
            int close = pattern.indexOf('}', i);
            if (close < 0) throw new IllegalArgumentException("Single '{' encountered in format string");
            String field = pattern.substring(i + 1, close);
            i = close + 1;
            char conversion = 's';
            int bang = field.indexOf('!');
            if (bang >= 0) {
                String conv = field.substring(bang + 1);
                if (!conv.equals("s") && !conv.equals("r")) {
                    throw new IllegalArgumentException("unsupported format conversion '!" + conv + "'");
                }
                conversion = conv.charAt(0);
                field = field.substring(0, bang);
            }
            if (field.contains(":") || field.contains(".") || field.contains("[")) {
                throw new IllegalArgumentException("format field '{" + field + "}' is not supported");
            }
            Object value;
            if (field.isEmpty()) {
                if (manual) throw new IllegalArgumentException("cannot switch from manual to automatic numbering");
                value = positional(args, auto++);
            } else if (field.chars().allMatch(Character::isDigit)) {
                manual = true;
                value = positional(args, Integer.parseInt(field));
            } else {
                if (!kwargs.containsKey(field)) throw new IllegalArgumentException("KeyError: '" + field + "'");
                value = kwargs.get(field);
            }
            out.append(conversion == 'r' ? PyValues.repr(value) : PyValues.str(value));
        }
        return out.toString();
    }

    private static Object positional(List<Object> args, int index) {
        if (index >= args.size()) throw new IllegalArgumentException("Replacement index " + index + " out of range");
        return args.get(index);
    }
}
