package io.moeserve.tokenizer.jinja;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Python's {@code str} methods for templates: {@code content.split('</think>')[-1].lstrip('\n')} and friends.
 *
 * <p>Java's {@code String} has methods of the same names with other meanings ({@code split} takes a regular
 * expression and drops trailing empty strings; {@code strip} takes no characters), so every call on a string is
 * routed here and an unknown method name is an error, never a silent fall-through to Java. Positions and lengths
 * count code points, as Python's do, so an emoji is one character.
 */
final class PyStringMethods {

    private PyStringMethods() {
    }

    /** The str methods that accept keyword arguments; the others are positional-only in CPython. */
    private static final Set<String> KEYWORD_METHODS = Set.of("split", "rsplit", "splitlines", "format");

    static Object invoke(String self, String method, PyCallArgs args) {
        if (!args.keywords().isEmpty() && !KEYWORD_METHODS.contains(method)) {
            throw new IllegalArgumentException("str." + method + "() takes no keyword arguments");
        }
        return switch (method) {
            case "strip" -> wrap(strip(self, args.expect(0, "chars").optionalString(0, "chars"), true, true));
            case "lstrip" -> wrap(strip(self, args.expect(0, "chars").optionalString(0, "chars"), true, false));
            case "rstrip" -> wrap(strip(self, args.expect(0, "chars").optionalString(0, "chars"), false, true));
            case "split" -> split(self, args.expect(0, "sep", "maxsplit"), false);
            case "rsplit" -> split(self, args.expect(0, "sep", "maxsplit"), true);
            case "splitlines" -> splitlines(self, args.expect(0, "keepends").bool(0, "keepends", false));
            case "startswith" -> affix(self, args.expect(1, "prefix", "start", "end"), true);
            case "endswith" -> affix(self, args.expect(1, "suffix", "start", "end"), false);
            case "replace" -> replace(self, args.expect(2, "old", "new", "count"));
            case "upper" -> wrap(noArgs(args, self).toUpperCase(Locale.ROOT));
            case "lower" -> wrap(noArgs(args, self).toLowerCase(Locale.ROOT));
            case "casefold" -> wrap(noArgs(args, self).toUpperCase(Locale.ROOT).toLowerCase(Locale.ROOT));
            case "title" -> wrap(title(noArgs(args, self)));
            case "capitalize" -> wrap(capitalize(noArgs(args, self)));
            case "swapcase" -> wrap(swapcase(noArgs(args, self)));
            case "find" -> (long) find(self, args.expect(1, "sub", "start", "end"), false);
            case "rfind" -> (long) find(self, args.expect(1, "sub", "start", "end"), true);
            case "index", "rindex" -> {
                int at = find(self, args.expect(1, "sub", "start", "end"), method.equals("rindex"));
                if (at < 0) throw new IllegalArgumentException("substring not found");
                yield (long) at;
            }
            case "count" -> count(self, args.expect(1, "sub", "start", "end"));
            case "join" -> join(self, args.expect(1, "iterable").get(0, "iterable"));
            case "removeprefix" -> {
                String p = args.expect(1, "prefix").string(0, "prefix");
                yield wrap(self.startsWith(p) ? self.substring(p.length()) : self);
            }
            case "removesuffix" -> {
                String s = args.expect(1, "suffix").string(0, "suffix");
                yield wrap(self.endsWith(s) && !s.isEmpty() ? self.substring(0, self.length() - s.length()) : self);
            }
            case "zfill" -> wrap(zfill(self, (int) args.expect(1, "width").integer(0, "width", 0)));
            case "center", "ljust", "rjust" -> wrap(pad(self, method, args.expect(1, "width", "fillchar")));
            case "partition" -> partition(self, args.expect(1, "sep").string(0, "sep"), false);
            case "rpartition" -> partition(self, args.expect(1, "sep").string(0, "sep"), true);
            case "isdigit", "isdecimal", "isnumeric", "isalpha", "isalnum", "isspace" ->
                    allMatch(noArgs(args, self), method);
            case "isupper" -> cased(noArgs(args, self), true);
            case "islower" -> cased(noArgs(args, self), false);
            case "istitle" -> istitle(noArgs(args, self));
            case "format" -> wrap(PyFormat.format(self, args.positional(), args.keywords()));
            default -> throw new IllegalArgumentException("'str' object has no attribute '" + method + "'");
        };
    }

    private static Object wrap(String s) {
        return PyValues.wrapString(s);
    }

    private static String noArgs(PyCallArgs args, String self) {
        args.expect(0);
        return self;
    }

    /** Python's str.isspace for one code point (includes no-break and ideographic spaces, unlike Java's). */
    static boolean isSpace(int cp) {
        return Character.isWhitespace(cp) || Character.isSpaceChar(cp) || cp == 0x85;
    }

    static String strip(String s, String chars, boolean left, boolean right) {
        int start = 0;
        int end = s.length();
        while (left && start < end) {
            int cp = s.codePointAt(start);
            if (!stripped(cp, chars)) break;
            start += Character.charCount(cp);
        }
        while (right && end > start) {
            int cp = s.codePointBefore(end);
            if (!stripped(cp, chars)) break;
            end -= Character.charCount(cp);
        }
        return s.substring(start, end);
    }

    private static boolean stripped(int cp, String chars) {
        return chars == null ? isSpace(cp) : chars.indexOf(cp) >= 0;
    }

    private static List<Object> split(String s, PyCallArgs args, boolean fromRight) {
        String sep = args.optionalString(0, "sep");
        long max = args.integer(1, "maxsplit", -1);
        if (max < 0) max = Long.MAX_VALUE;
        List<String> parts = sep == null ? splitWhitespace(s, max, fromRight) : splitOn(s, sep, max, fromRight);
        List<Object> out = new ArrayList<>(parts.size());
        for (String p : parts) out.add(wrap(p));
        return out;
    }

    private static List<String> splitOn(String s, String sep, long max, boolean fromRight) {
        if (sep.isEmpty()) throw new IllegalArgumentException("empty separator");
        List<String> parts = new ArrayList<>();
        if (!fromRight) {
            int from = 0;
            for (int at; parts.size() < max && (at = s.indexOf(sep, from)) >= 0; from = at + sep.length()) {
                parts.add(s.substring(from, at));
            }
            parts.add(s.substring(from));
        } else {
            int to = s.length();
            for (int at; parts.size() < max && (at = s.lastIndexOf(sep, to - sep.length())) >= 0; to = at) {
                parts.addFirst(s.substring(at + sep.length(), to));
            }
            parts.addFirst(s.substring(0, to));
        }
        return parts;
    }

    private static List<String> splitWhitespace(String s, long max, boolean fromRight) {
        List<String> parts = new ArrayList<>();
        if (!fromRight) {
            int i = 0;
            int n = s.length();
            while (true) {
                while (i < n && isSpace(s.codePointAt(i))) i += Character.charCount(s.codePointAt(i));
                if (i >= n) break;
                if (parts.size() == max) {
                    parts.add(s.substring(i));
                    break;
                }
                int start = i;
                while (i < n && !isSpace(s.codePointAt(i))) i += Character.charCount(s.codePointAt(i));
                parts.add(s.substring(start, i));
            }
        } else {
            int i = s.length();
            while (true) {
                while (i > 0 && isSpace(s.codePointBefore(i))) i -= Character.charCount(s.codePointBefore(i));
                if (i <= 0) break;
                if (parts.size() == max) {
                    parts.addFirst(s.substring(0, i));
                    break;
                }
                int end = i;
                while (i > 0 && !isSpace(s.codePointBefore(i))) i -= Character.charCount(s.codePointBefore(i));
                parts.addFirst(s.substring(i, end));
            }
        }
        return parts;
    }

    private static List<Object> splitlines(String s, boolean keepEnds) {
        List<Object> out = new ArrayList<>();
        int start = 0;
        int i = 0;
        while (i < s.length()) {
            char c = s.charAt(i);
            int breakLength = switch (c) {
                case '\r' -> i + 1 < s.length() && s.charAt(i + 1) == '\n' ? 2 : 1;
                case '\n', 0x0b, 0x0c, 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029 -> 1;
                default -> 0;
            };
            if (breakLength == 0) {
                i++;
                continue;
            }
            out.add(wrap(s.substring(start, keepEnds ? i + breakLength : i)));
            i += breakLength;
            start = i;
        }
        if (start < s.length()) out.add(wrap(s.substring(start)));
        return out;
    }

    /** Python slice bounds for start/end arguments, in code points, converted to UTF-16 offsets. */
    private static int[] bounds(String s, PyCallArgs args, int startIndex) {
        int length = s.codePointCount(0, s.length());
        long start = args.integer(startIndex, "start", 0);
        long end = args.integer(startIndex + 1, "end", length);
        if (start < 0) start = Math.max(0, start + length);
        if (end < 0) end = Math.max(0, end + length);
        start = Math.min(start, length);
        end = Math.min(end, length);
        return new int[] {s.offsetByCodePoints(0, (int) start), s.offsetByCodePoints(0, (int) end)};
    }

    private static boolean affix(String s, PyCallArgs args, boolean prefix) {
        Object what = PyValues.unwrap(args.get(0, prefix ? "prefix" : "suffix"));
        int[] b = bounds(s, args, 1);
        if (b[0] > b[1]) return false;
        String region = s.substring(b[0], b[1]);
        List<?> candidates = what instanceof List<?> l ? l : List.of(args.string(0, prefix ? "prefix" : "suffix"));
        for (Object c : candidates) {
            if (!PyValues.isString(c)) {
                throw new IllegalArgumentException("tuple for " + (prefix ? "startswith" : "endswith")
                        + " must only contain str, not " + PyCallArgs.typeName(c));
            }
            if (prefix ? region.startsWith(c.toString()) : region.endsWith(c.toString())) return true;
        }
        return false;
    }

    private static Object replace(String s, PyCallArgs args) {
        String old = args.string(0, "old");
        String replacement = args.string(1, "new");
        long count = args.integer(2, "count", -1);
        if (count < 0) count = Long.MAX_VALUE;
        StringBuilder out = new StringBuilder();
        if (old.isEmpty()) {
            // Python inserts the replacement before every code point and at the end.
            long done = 0;
            int i = 0;
            while (i <= s.length()) {
                if (done < count) {
                    out.append(replacement);
                    done++;
                }
                if (i == s.length()) break;
                int cp = s.codePointAt(i);
                out.appendCodePoint(cp);
                i += Character.charCount(cp);
            }
            return wrap(out.toString());
        }
        int from = 0;
        long done = 0;
        for (int at; done < count && (at = s.indexOf(old, from)) >= 0; from = at + old.length(), done++) {
            out.append(s, from, at).append(replacement);
        }
        out.append(s, from, s.length());
        return wrap(out.toString());
    }

    private static int find(String s, PyCallArgs args, boolean last) {
        String sub = args.string(0, "sub");
        int[] b = bounds(s, args, 1);
        if (b[1] - b[0] < sub.length()) return -1;
        int at = last ? s.lastIndexOf(sub, b[1] - sub.length()) : s.indexOf(sub, b[0]);
        if (at < b[0] || at + sub.length() > b[1]) return -1;
        return s.codePointCount(0, at);
    }

    private static long count(String s, PyCallArgs args) {
        String sub = args.string(0, "sub");
        int[] b = bounds(s, args, 1);
        if (b[0] > b[1]) return 0;
        String region = s.substring(b[0], b[1]);
        if (sub.isEmpty()) return region.codePointCount(0, region.length()) + 1;
        long n = 0;
        for (int at = region.indexOf(sub); at >= 0; at = region.indexOf(sub, at + sub.length())) n++;
        return n;
    }

    private static Object join(String self, Object iterable) {
        Object items = PyValues.unwrap(iterable);
        Iterable<?> parts = switch (items) {
            case List<?> l -> l;
            case Map<?, ?> m -> m.keySet();
            case CharSequence cs -> cs.toString().codePoints().mapToObj(Character::toString).toList();
            default -> throw new IllegalArgumentException("can only join an iterable");
        };
        StringBuilder out = new StringBuilder();
        int i = 0;
        for (Object part : parts) {
            if (!PyValues.isString(part)) {
                throw new IllegalArgumentException("sequence item " + i + ": expected str instance, "
                        + PyCallArgs.typeName(part) + " found");
            }
            if (i++ > 0) out.append(self);
            out.append(part);
        }
        return wrap(out.toString());
    }

    private static String title(String s) {
        StringBuilder out = new StringBuilder(s.length());
        boolean previousCased = false;
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            i += Character.charCount(cp);
            out.appendCodePoint(previousCased ? Character.toLowerCase(cp) : Character.toTitleCase(cp));
            previousCased = isCased(cp);
        }
        return out.toString();
    }

    private static String capitalize(String s) {
        if (s.isEmpty()) return s;
        int first = s.codePointAt(0);
        return new StringBuilder().appendCodePoint(Character.toTitleCase(first))
                .append(s.substring(Character.charCount(first)).toLowerCase(Locale.ROOT)).toString();
    }

    private static String swapcase(String s) {
        StringBuilder out = new StringBuilder(s.length());
        s.codePoints().forEach(cp -> out.appendCodePoint(
                Character.isUpperCase(cp) ? Character.toLowerCase(cp)
                        : Character.isLowerCase(cp) ? Character.toUpperCase(cp) : cp));
        return out.toString();
    }

    private static boolean isCased(int cp) {
        return Character.isUpperCase(cp) || Character.isLowerCase(cp) || Character.isTitleCase(cp);
    }

    private static String zfill(String s, int width) {
        int length = s.codePointCount(0, s.length());
        if (length >= width) return s;
        String zeros = "0".repeat(width - length);
        if (!s.isEmpty() && (s.charAt(0) == '+' || s.charAt(0) == '-')) return s.charAt(0) + zeros + s.substring(1);
        return zeros + s;
    }

    private static String pad(String s, String method, PyCallArgs args) {
        int width = (int) args.integer(0, "width", 0);
        String fill = args.get(1, "fillchar") == null ? " " : args.string(1, "fillchar");
        if (fill.codePointCount(0, fill.length()) != 1) {
            throw new IllegalArgumentException("The fill character must be exactly one character long");
        }
        int length = s.codePointCount(0, s.length());
        int total = width - length;
        if (total <= 0) return s;
        int left = switch (method) {
            case "ljust" -> 0;
            case "rjust" -> total;
            // CPython centres with the extra fill on the left when both the padding and the width are odd.
            default -> total / 2 + (total & width & 1);
        };
        return fill.repeat(left) + s + fill.repeat(total - left);
    }

    private static PyTuple partition(String s, String sep, boolean last) {
        if (sep.isEmpty()) throw new IllegalArgumentException("empty separator");
        int at = last ? s.lastIndexOf(sep) : s.indexOf(sep);
        if (at < 0) {
            return last ? new PyTuple("", "", wrap(s)) : new PyTuple(wrap(s), "", "");
        }
        return new PyTuple(wrap(s.substring(0, at)), wrap(sep), wrap(s.substring(at + sep.length())));
    }

    private static boolean allMatch(String s, String method) {
        if (s.isEmpty()) return false;
        return s.codePoints().allMatch(cp -> switch (method) {
            case "isdecimal" -> Character.getType(cp) == Character.DECIMAL_DIGIT_NUMBER;
            case "isdigit" -> isDigit(cp);
            case "isnumeric" -> isNumeric(cp);
            case "isalpha" -> Character.isLetter(cp);
            case "isalnum" -> Character.isLetter(cp) || isNumeric(cp);
            default -> isSpace(cp);
        });
    }

    private static boolean isDigit(int cp) {
        int type = Character.getType(cp);
        return type == Character.DECIMAL_DIGIT_NUMBER
                || (type == Character.OTHER_NUMBER && Character.getNumericValue(cp) >= 0
                        && Character.getNumericValue(cp) <= 9);
    }

    private static boolean isNumeric(int cp) {
        int type = Character.getType(cp);
        return type == Character.DECIMAL_DIGIT_NUMBER || type == Character.LETTER_NUMBER
                || type == Character.OTHER_NUMBER;
    }

    private static boolean cased(String s, boolean upper) {
        boolean anyCased = false;
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            i += Character.charCount(cp);
            if (upper ? Character.isLowerCase(cp) || Character.isTitleCase(cp) : Character.isUpperCase(cp)
                    || Character.isTitleCase(cp)) {
                return false;
            }
            anyCased |= isCased(cp);
        }
        return anyCased;
    }

    private static boolean istitle(String s) {
        boolean anyCased = false;
        boolean previousCased = false;
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            i += Character.charCount(cp);
            if (Character.isUpperCase(cp) || Character.isTitleCase(cp)) {
                if (previousCased) return false;
                previousCased = true;
                anyCased = true;
            } else if (Character.isLowerCase(cp)) {
                if (!previousCased) return false;
                previousCased = true;
                anyCased = true;
            } else {
                previousCased = false;
            }
        }
        return anyCased;
    }
}
