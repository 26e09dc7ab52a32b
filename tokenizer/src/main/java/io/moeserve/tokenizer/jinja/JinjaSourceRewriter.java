package io.moeserve.tokenizer.jinja;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Rewrites Jinja2 template source into the dialect Jinjava parses, so that it means what it means in Python.
 */
final class JinjaSourceRewriter {
    /*
     * Why rewrite source text at all: Jinjava's expression parser is JUEL with extensions, and a few Python forms
     * either fail to parse or parse into something else, and Jinjava reports that only in its error list:
     *
     *  - x[a:b:c] with a step (Qwen3's messages[::-1]) is a syntax error; plain [a:b] parses but has its own rules.
     *    Every subscript that holds a colon becomes x._py_slice_(a, b, c), a method call that
     *    PythonValueResolver answers with CPython's slice rules. A method call binds exactly like a subscript
     *    (both are postfix), so the operand never has to be found.
     *  - f(k=a - 1): Jinjava's '=' binds tighter than '-', so the keyword argument becomes (k=a) - 1. Keyword
     *    values of calls get parentheses: f(k=(a - 1)). Macro definitions are left alone (Jinjava's macro
     *    signature parser does not accept parentheses there, and defaults rarely need them).
     *  - none/None would be Java null, which Jinjava cannot tell from "undefined"; they become a variable bound
     *    to PyNone. The test name in "x is none" stays (it is a test, looked up among tests).
     *  - string literals use Python escapes (\u00e9, \x41, \N{...}); JUEL accepts only \\ \' \" and a few others.
     *    A literal with a backslash is decoded here and written back with only \\ and \" escapes (newlines and
     *    other characters go in raw, which Jinjava's quote-aware scanner accepts).
     *  - "not a == b" is not (a == b) in Python but (not a) == b in JUEL, and "not x|length" filters first in
     *    Python; the operand of a unary not (up to the next and/or/if/else at its level) gets parentheses.
     *  - names that are JUEL keywords (empty, div, mod, eq, ne, lt, gt, le, ge, instanceof) cannot be variables
     *    or attributes there: a variable becomes _py_v_<name> (JinjaTemplate renames context keys the same way)
     *    and an attribute .name becomes ['name'].
     *  - whitespace control is done here, by jinja2's lexer rules (lstrip_blocks, trim_blocks, the - and +
     *    modifiers, line_starting), and tags are handed to Jinjava without modifiers and with Jinjava's own
     *    trimming switched off: Jinjava's version strips spaces before a tag in the middle of a line and ignores
     *    '-' on {{ }} and comments. Comments are dropped.
     *  - Jinjava ignores a for loop's {% else %} and renders "for x in y if z" and recursive loops as empty
     *    loops; the else branch becomes {% endfor %}{% if not (y) %}...{% endif %}, the other two are refused.
     *
     * It also collects every filter and test name the template uses, so that JinjaTemplate can refuse a template
     * whose filter Jinjava lacks: Jinjava renders an unknown filter as nothing, without an error.
     *
     * Approach: a small lexer that follows Jinja2's own (tags {{ }}, {% %}, {# #}; raw blocks copied verbatim;
     * inside a tag, strings, numbers, names, operators, and a bracket depth so that '}}' inside a dict literal does
     * not end the tag), then a recursive pass over each tag's tokens. Tokens that need no change are copied as
     * written.
     */

    static final String NONE_VARIABLE = "_py_none_";

    /** Prefix for variables whose Jinja2 name is a JUEL keyword. */
    static final String RESERVED_PREFIX = "_py_v_";

    /** Jinja2 identifiers that JUEL reserves. */
    static final Set<String> JUEL_RESERVED =
            Set.of("empty", "div", "mod", "eq", "ne", "lt", "gt", "le", "ge", "instanceof");

    private static final Set<String> KEYWORDS = Set.of("and", "or", "not", "in", "is", "if", "else", "elif",
            "for", "recursive", "with", "without", "context", "import", "from", "as", "ignore", "missing");

    /** The rewritten source and the names of the filters and tests it uses. */
    record Result(String source, Set<String> filters, Set<String> tests) {
    }

    private enum Kind { SPACE, NAME, STRING, NUMBER, OP }

    private record Token(Kind kind, String text, String value) {
        boolean is(String op) {
            return kind == Kind.OP && text.equals(op);
        }

        boolean isName(String name) {
            return kind == Kind.NAME && text.equals(name);
        }
    }

    private enum PieceKind { TEXT, VARIABLE, BLOCK, COMMENT, RAW_BEGIN, RAW_END }

    /**
     * Template text, or one tag with its whitespace modifiers ('-', '+' or 0); {@code body} is the text, or the
     * Jinjava source the tag becomes.
     */
    private record Piece(PieceKind kind, char left, char right, String body) {
    }

    /** An open block tag; a for loop also keeps its iterable, for an {% else %} branch. */
    private static final class Block {
        final String tag;
        final String iterable;
        boolean forElse;

        Block(String tag, String iterable) {
            this.tag = tag;
            this.iterable = iterable;
        }
    }

    private static final Set<String> BLOCK_TAGS = Set.of("for", "if", "macro", "call", "filter", "block", "with",
            "autoescape", "generation", "set");

    private final String src;
    private final List<Piece> pieces = new ArrayList<>();
    private final Set<String> filters = new LinkedHashSet<>();
    private final Set<String> tests = new LinkedHashSet<>();
    private final ArrayDeque<Block> blocks = new ArrayDeque<>();
    private int pos;

    private JinjaSourceRewriter(String src) {
        this.src = src;
    }

    static Result rewrite(String template) {
        JinjaSourceRewriter r = new JinjaSourceRewriter(template);
        r.lex();
        return new Result(r.assemble(), Set.copyOf(r.filters), Set.copyOf(r.tests));
    }

    private void lex() {
        while (pos < src.length()) {
            int open = nextTagStart(pos);
            if (open < 0) {
                pieces.add(new Piece(PieceKind.TEXT, '\0', '\0', src.substring(pos)));
                return;
            }
            pieces.add(new Piece(PieceKind.TEXT, '\0', '\0', src.substring(pos, open)));
            char kind = src.charAt(open + 1);
            char left = modifierAt(open + 2);
            if (kind == '#') {
                int close = src.indexOf("#}", open + 2);
                if (close < 0) throw new TemplateException("unclosed comment at offset " + open);
                char right = close > open + 2 && (src.charAt(close - 1) == '-' || src.charAt(close - 1) == '+')
                        ? src.charAt(close - 1) : '\0';
                pieces.add(new Piece(PieceKind.COMMENT, left, right, ""));
                pos = close + 2;
            } else if (kind == '%' && isRawStart(open)) {
                lexRawBlock(open, left);
            } else {
                lexTag(open, kind == '{', left);
            }
        }
    }

    private char modifierAt(int i) {
        return i < src.length() && (src.charAt(i) == '-' || src.charAt(i) == '+') ? src.charAt(i) : '\0';
    }

    private int nextTagStart(int from) {
        for (int i = src.indexOf('{', from); i >= 0 && i + 1 < src.length(); i = src.indexOf('{', i + 1)) {
            char c = src.charAt(i + 1);
            if (c == '{' || c == '%' || c == '#') return i;
        }
        return -1;
    }

    private boolean isRawStart(int open) {
        int i = skipModifierAndSpace(open + 2);
        if (!src.startsWith("raw", i) || !endOfWord(i + 3)) return false;
        int j = i + 3;
        while (j < src.length() && Character.isWhitespace(src.charAt(j))) j++;
        return src.startsWith("%}", j) || src.startsWith("-%}", j);
    }

    /** {% raw %}...{% endraw %}: the content is text that Jinjava must not parse. */
    private void lexRawBlock(int open, char left) {
        int close = src.indexOf("%}", open + 2);
        char right = src.charAt(close - 1) == '-' ? '-' : '\0';
        pieces.add(new Piece(PieceKind.RAW_BEGIN, left, right, "{% raw %}"));
        int i = close + 2;
        while (true) {
            int tag = src.indexOf("{%", i);
            if (tag < 0) throw new TemplateException("unclosed {% raw %} block at offset " + open);
            int j = skipModifierAndSpace(tag + 2);
            if (src.startsWith("endraw", j) && endOfWord(j + 6)) {
                int end = src.indexOf("%}", j);
                if (end < 0) throw new TemplateException("unclosed {% endraw %} at offset " + tag);
                pieces.add(new Piece(PieceKind.TEXT, '\0', '\0', src.substring(close + 2, tag)));
                char endRight = src.charAt(end - 1) == '-' || src.charAt(end - 1) == '+' ? src.charAt(end - 1) : '\0';
                pieces.add(new Piece(PieceKind.RAW_END, modifierAt(tag + 2), endRight, "{% endraw %}"));
                pos = end + 2;
                return;
            }
            i = tag + 2;
        }
    }

    private int skipModifierAndSpace(int i) {
        if (i < src.length() && (src.charAt(i) == '-' || src.charAt(i) == '+')) i++;
        while (i < src.length() && Character.isWhitespace(src.charAt(i))) i++;
        return i;
    }

    private boolean endOfWord(int i) {
        return i >= src.length() || !isNameChar(src.charAt(i));
    }

    private static boolean isNameChar(char c) {
        return Character.isLetterOrDigit(c) || c == '_';
    }

    /**
     * Applies jinja2's whitespace rules to the text around tags and writes the Jinjava source: tags without
     * modifiers, comments dropped, raw content verbatim.
     */
    private String assemble() {
        StringBuilder out = new StringBuilder();
        boolean lineStarting = true;
        Piece previousTag = null;
        for (int i = 0; i < pieces.size(); i++) {
            Piece p = pieces.get(i);
            if (p.kind != PieceKind.TEXT) {
                out.append(p.body); // a comment's body is empty
                previousTag = p;
                continue;
            }
            String text = p.body;
            if (previousTag != null) {
                // The end of the previous tag: '-' eats all whitespace, trim_blocks one newline after a block.
                if (previousTag.right == '-') {
                    String kept = stripPython(text, true, false);
                    lineStarting = text.substring(0, text.length() - kept.length()).endsWith("\n");
                    text = kept;
                } else if (previousTag.right != '+' && trimsNewline(previousTag.kind) && text.startsWith("\n")) {
                    text = text.substring(1);
                    lineStarting = true;
                } else {
                    lineStarting = false;
                }
            }
            Piece next = i + 1 < pieces.size() ? pieces.get(i + 1) : null;
            if (next != null && next.left == '-') {
                text = stripPython(text, false, true);
            } else if (next != null && next.left != '+' && next.kind != PieceKind.VARIABLE) {
                // lstrip_blocks: blanks between the start of a line and a block or comment tag go.
                int lineStart = text.lastIndexOf('\n') + 1;
                if ((lineStart > 0 || lineStarting) && lineStart < text.length()
                        && text.substring(lineStart).codePoints().allMatch(PyStringMethods::isSpace)) {
                    text = text.substring(0, lineStart);
                }
            }
            out.append(text);
        }
        return out.toString();
    }

    private static boolean trimsNewline(PieceKind kind) {
        return kind == PieceKind.BLOCK || kind == PieceKind.COMMENT || kind == PieceKind.RAW_END;
    }

    private static String stripPython(String s, boolean left, boolean right) {
        return PyStringMethods.strip(s, null, left, right);
    }

    /** Lexes one {{ }} or {% %} tag and records it with its rewritten body. */
    private void lexTag(int open, boolean expression, char left) {
        int i = open + 2 + (left == '\0' ? 0 : 1);
        List<Token> tokens = new ArrayList<>();
        int depth = 0;
        while (true) {
            if (i >= src.length()) {
                throw new TemplateException("unclosed " + (expression ? "{{" : "{%") + " at offset " + open);
            }
            if (depth == 0) {
                int end = tagEnd(i, expression);
                if (end > 0) {
                    char right = end - i == 3 ? src.charAt(i) : '\0';
                    pieces.add(new Piece(expression ? PieceKind.VARIABLE : PieceKind.BLOCK, left, right,
                            expression ? "{{ " + emitTag(tokens, true) + " }}" : statement(tokens, open)));
                    pos = end;
                    return;
                }
            }
            char c = src.charAt(i);
            int start = i;
            if (Character.isWhitespace(c)) {
                while (i < src.length() && Character.isWhitespace(src.charAt(i))) i++;
                tokens.add(new Token(Kind.SPACE, src.substring(start, i), null));
            } else if (c == '\'' || c == '"') {
                i = endOfString(i);
                String raw = src.substring(start, i);
                tokens.add(new Token(Kind.STRING, raw, decodePythonString(raw, start)));
            } else if (Character.isDigit(c)) {
                while (i < src.length() && (isNameChar(src.charAt(i)) || src.charAt(i) == '.'
                        || ((src.charAt(i) == '+' || src.charAt(i) == '-')
                                && (src.charAt(i - 1) == 'e' || src.charAt(i - 1) == 'E')))) {
                    i++;
                }
                tokens.add(new Token(Kind.NUMBER, src.substring(start, i), null));
            } else if (isNameChar(c)) {
                while (i < src.length() && isNameChar(src.charAt(i))) i++;
                tokens.add(new Token(Kind.NAME, src.substring(start, i), null));
            } else {
                String op = operatorAt(i);
                i += op.length();
                if (op.equals("(") || op.equals("[") || op.equals("{")) depth++;
                if (op.equals(")") || op.equals("]") || op.equals("}")) depth--;
                tokens.add(new Token(Kind.OP, op, null));
            }
        }
    }

    /** The offset just past the closing delimiter if one starts at i (with its - or + modifier), else -1. */
    private int tagEnd(int i, boolean expression) {
        String close = expression ? "}}" : "%}";
        if (src.startsWith(close, i)) return i + 2;
        boolean modifier = src.charAt(i) == '-' || (!expression && src.charAt(i) == '+');
        if (modifier && src.startsWith(close, i + 1)) return i + 3;
        return -1;
    }

    private String operatorAt(int i) {
        for (String op : new String[] {"**", "//", "==", "!=", "<=", ">="}) {
            if (src.startsWith(op, i)) return op;
        }
        return String.valueOf(src.charAt(i));
    }

    private int endOfString(int start) {
        char quote = src.charAt(start);
        int i = start + 1;
        while (i < src.length()) {
            char c = src.charAt(i);
            if (c == '\\') {
                i += 2;
            } else if (c == quote) {
                return i + 1;
            } else {
                i++;
            }
        }
        throw new TemplateException("unclosed string literal at offset " + start);
    }

    /**
     * The Jinjava source for a {% ... %} tag. Tracks open blocks, turns a for loop's {% else %} into an
     * {% if %} after the loop (Jinjava ignores for-else), and refuses loop filters and recursive loops, which
     * Jinjava would render as an empty loop without an error.
     */
    private String statement(List<Token> tokens, int offset) {
        String body = emitTag(tokens, false);
        int first = nextSignificant(tokens, 0, tokens.size());
        String tag = first < 0 ? "" : tokens.get(first).text;
        switch (tag) {
            case "for" -> {
                int in = findTopLevel(tokens, first + 1, "in");
                if (in < 0) throw new TemplateException("for tag without 'in' at offset " + offset);
                if (findTopLevel(tokens, in + 1, "if") >= 0 || findTopLevel(tokens, in + 1, "recursive") >= 0) {
                    throw new TemplateException("for-loop filters and recursive loops are not supported (offset "
                            + offset + ")");
                }
                blocks.push(new Block("for", emit(tokens, in + 1, tokens.size(), -1, false).strip()));
            }
            case "else" -> {
                Block open = blocks.peek();
                if (open != null && open.tag.equals("for")) {
                    open.forElse = true;
                    return "{% endfor %}{% if not (" + open.iterable + ") %}";
                }
            }
            case "set" -> {
                // Only "{% set x %}...{% endset %}" opens a block; "{% set x = ... %}" does not.
                if (findTopLevel(tokens, first + 1, "=") < 0) blocks.push(new Block("set", null));
            }
            default -> {
                if (BLOCK_TAGS.contains(tag)) {
                    blocks.push(new Block(tag, null));
                } else if (tag.startsWith("end") && BLOCK_TAGS.contains(tag.substring(3))) {
                    Block open = blocks.poll();
                    if (open == null || !open.tag.equals(tag.substring(3))) {
                        throw new TemplateException("unexpected {% " + tag + " %} at offset " + offset);
                    }
                    if (open.forElse) return "{% endif %}";
                }
            }
        }
        return "{% " + body + " %}";
    }

    private static int findTopLevel(List<Token> tokens, int from, String text) {
        int depth = 0;
        for (int i = from; i < tokens.size(); i++) {
            Token t = tokens.get(i);
            if (t.is("(") || t.is("[") || t.is("{")) depth++;
            if (t.is(")") || t.is("]") || t.is("}")) depth--;
            if (depth == 0 && t.text.equals(text) && t.kind != Kind.STRING) return i;
        }
        return -1;
    }

    private String emitTag(List<Token> tokens, boolean expression) {
        int first = nextSignificant(tokens, 0, tokens.size());
        boolean macroDefinition = !expression && first >= 0 && tokens.get(first).isName("macro");
        if (!expression && first >= 0 && tokens.get(first).isName("filter")) {
            int name = nextSignificant(tokens, first + 1, tokens.size());
            if (name >= 0 && tokens.get(name).kind == Kind.NAME) filters.add(tokens.get(name).text);
        }
        return emit(tokens, 0, tokens.size(), expression ? -1 : first, macroDefinition).strip();
    }

    /**
     * Rewrites tokens[from, to). {@code tagName} is the index of a statement's tag name (a keyword there), or -1;
     * {@code macroDefinition} marks the tag whose first parenthesis is a macro signature.
     */
    private String emit(List<Token> tokens, int from, int to, int tagName, boolean macroDefinition) {
        StringBuilder b = new StringBuilder();
        int i = from;
        while (i < to) {
            Token t = tokens.get(i);
            int prev = previousSignificant(tokens, from, i);
            Token before = prev >= 0 ? tokens.get(prev) : null;
            boolean postfix = prev >= 0 && prev != tagName && isOperandEnd(before);
            if (t.is("[") && postfix) {
                int close = matching(tokens, i, to);
                List<int[]> parts = split(tokens, i + 1, close, ":");
                if (parts.size() > 1) {
                    if (parts.size() > 3) throw new TemplateException("slice with more than three parts");
                    b.append('.').append(PythonValueResolver.SLICE_METHOD).append('(');
                    for (int p = 0; p < 3; p++) {
                        if (p > 0) b.append(", ");
                        int[] part = p < parts.size() ? parts.get(p) : null;
                        if (part == null || nextSignificant(tokens, part[0], part[1]) < 0) {
                            b.append(NONE_VARIABLE);
                        } else {
                            b.append(emit(tokens, part[0], part[1], -1, false));
                        }
                    }
                    b.append(')');
                } else {
                    b.append('[').append(emit(tokens, i + 1, close, -1, false)).append(']');
                }
                i = close + 1;
            } else if (t.is("(") && postfix) {
                int close = matching(tokens, i, to);
                boolean signature = macroDefinition && prev == nextSignificant(tokens, tagName + 1, to);
                String arguments = signature
                        ? emit(tokens, i + 1, close, -1, false) : emitArguments(tokens, i + 1, close);
                b.append('(').append(arguments).append(')');
                i = close + 1;
            } else if (t.is("(") || t.is("[") || t.is("{")) {
                int close = matching(tokens, i, to);
                String inner = emit(tokens, i + 1, close, -1, false);
                // "}}" inside an expression would end Jinjava's tag early (its scanner ignores nesting).
                String gap = t.is("{") && inner.endsWith("}") ? " " : "";
                b.append(t.text).append(inner).append(gap).append(tokens.get(close).text);
                i = close + 1;
            } else if (t.isName("not") && isUnaryNot(tokens, from, i, to)) {
                int end = endOfNotOperand(tokens, i + 1, to);
                b.append("not (").append(emit(tokens, i + 1, end, -1, false).strip()).append(')');
                i = end;
            } else if (t.is(".") && i + 1 < to && tokens.get(i + 1).kind == Kind.NAME
                    && JUEL_RESERVED.contains(tokens.get(i + 1).text)) {
                b.append("['").append(tokens.get(i + 1).text).append("']");
                i += 2;
            } else {
                b.append(rewriteToken(tokens, from, i, before));
                i++;
            }
        }
        return b.toString();
    }

    /** A unary not, as opposed to the not of "is not" and "not in". */
    private static boolean isUnaryNot(List<Token> tokens, int from, int i, int to) {
        int prev = previousSignificant(tokens, from, i);
        if (prev >= 0 && tokens.get(prev).isName("is")) return false;
        int next = nextSignificant(tokens, i + 1, to);
        return next >= 0 && !tokens.get(next).isName("in");
    }

    /** Python's not binds looser than comparisons and filters: its operand runs to the next and/or/if/else. */
    private static int endOfNotOperand(List<Token> tokens, int from, int to) {
        int depth = 0;
        for (int i = from; i < to; i++) {
            Token t = tokens.get(i);
            if (t.is("(") || t.is("[") || t.is("{")) depth++;
            if (t.is(")") || t.is("]") || t.is("}")) depth--;
            if (depth == 0 && (t.isName("and") || t.isName("or") || t.isName("if") || t.isName("else")
                    || t.is(","))) {
                return i;
            }
        }
        return to;
    }

    /** Call arguments: each keyword argument whose value is more than one token gets parentheses. */
    private String emitArguments(List<Token> tokens, int from, int to) {
        StringBuilder b = new StringBuilder();
        List<int[]> args = split(tokens, from, to, ",");
        for (int a = 0; a < args.size(); a++) {
            if (a > 0) b.append(',');
            int s = args.get(a)[0];
            int e = args.get(a)[1];
            int name = nextSignificant(tokens, s, e);
            int eq = name >= 0 ? nextSignificant(tokens, name + 1, e) : -1;
            if (name >= 0 && eq >= 0 && tokens.get(name).kind == Kind.NAME && tokens.get(eq).is("=")
                    && countSignificant(tokens, eq + 1, e) > 1) {
                int valueStart = nextSignificant(tokens, eq + 1, e);
                int valueEnd = previousSignificant(tokens, valueStart, e) + 1;
                b.append(join(tokens, s, valueStart))
                        .append('(').append(emit(tokens, valueStart, valueEnd, -1, false)).append(')')
                        .append(join(tokens, valueEnd, e));
            } else {
                b.append(emit(tokens, s, e, -1, false));
            }
        }
        return b.toString();
    }

    private String rewriteToken(List<Token> tokens, int from, int i, Token before) {
        Token t = tokens.get(i);
        if (t.kind == Kind.STRING) return t.text.indexOf('\\') < 0 ? t.text : encodeForJinjava(t.value);
        if (t.kind != Kind.NAME) return t.text;
        if (before != null && before.is("|")) {
            filters.add(t.text);
            return t.text;
        }
        boolean afterIs = before != null && before.isName("is") && !t.isName("not");
        if (afterIs || (before != null && before.isName("not") && isAfterIs(tokens, from, i))) {
            tests.add(t.text);
            return t.text;
        }
        boolean attribute = before != null && before.is(".");
        int next = nextSignificant(tokens, i + 1, tokens.size());
        // A keyword argument's name: "=" follows and it starts an argument (set targets follow the tag name).
        boolean keyword = next >= 0 && tokens.get(next).is("=")
                && (before == null || before.is(",") || before.is("("));
        if (attribute || keyword) return t.text;
        if (t.text.equals("none") || t.text.equals("None")) return NONE_VARIABLE;
        if (JUEL_RESERVED.contains(t.text)) return RESERVED_PREFIX + t.text;
        return t.text;
    }

    private boolean isAfterIs(List<Token> tokens, int from, int i) {
        int notIndex = previousSignificant(tokens, from, i);
        int isIndex = previousSignificant(tokens, from, notIndex);
        return isIndex >= 0 && tokens.get(isIndex).isName("is");
    }

    /** Whether a token can end an operand, making a following ( a call and [ a subscript. */
    private static boolean isOperandEnd(Token t) {
        return switch (t.kind) {
            case NAME -> !KEYWORDS.contains(t.text);
            case STRING -> true;
            case OP -> t.is(")") || t.is("]") || t.is("}");
            default -> false;
        };
    }

    private static int matching(List<Token> tokens, int open, int to) {
        int depth = 0;
        for (int i = open; i < to; i++) {
            Token t = tokens.get(i);
            if (t.is("(") || t.is("[") || t.is("{")) depth++;
            if (t.is(")") || t.is("]") || t.is("}")) {
                if (--depth == 0) return i;
            }
        }
        throw new TemplateException("unbalanced '" + tokens.get(open).text + "' in template expression");
    }

    /** Splits tokens[from, to) at top-level separators; returns [start, end) pairs. */
    private static List<int[]> split(List<Token> tokens, int from, int to, String separator) {
        List<int[]> parts = new ArrayList<>();
        int depth = 0;
        int start = from;
        for (int i = from; i < to; i++) {
            Token t = tokens.get(i);
            if (t.is("(") || t.is("[") || t.is("{")) depth++;
            if (t.is(")") || t.is("]") || t.is("}")) depth--;
            if (depth == 0 && t.is(separator)) {
                parts.add(new int[] {start, i});
                start = i + 1;
            }
        }
        parts.add(new int[] {start, to});
        return parts;
    }

    private static int nextSignificant(List<Token> tokens, int from, int to) {
        for (int i = Math.max(from, 0); i < to; i++) {
            if (tokens.get(i).kind != Kind.SPACE) return i;
        }
        return -1;
    }

    private static int previousSignificant(List<Token> tokens, int from, int before) {
        for (int i = before - 1; i >= from; i--) {
            if (tokens.get(i).kind != Kind.SPACE) return i;
        }
        return -1;
    }

    private static int countSignificant(List<Token> tokens, int from, int to) {
        int n = 0;
        for (int i = from; i < to; i++) {
            if (tokens.get(i).kind != Kind.SPACE) n++;
        }
        return n;
    }

    private static String join(List<Token> tokens, int from, int to) {
        StringBuilder b = new StringBuilder();
        for (int i = from; i < to; i++) b.append(tokens.get(i).text);
        return b.toString();
    }

    /** A JUEL literal with the given value: only backslash and the quote are escaped. */
    private static String encodeForJinjava(String value) {
        return '"' + value.replace("\\", "\\\\").replace("\"", "\\\"") + '"';
    }

    /** Decodes a Python string literal (quotes included) the way Jinja2's lexer does. */
    private static String decodePythonString(String raw, int offset) {
        StringBuilder b = new StringBuilder();
        int end = raw.length() - 1;
        for (int i = 1; i < end; i++) {
            char c = raw.charAt(i);
            if (c != '\\' || i + 1 >= end) {
                b.append(c);
                continue;
            }
            char e = raw.charAt(++i);
            switch (e) {
                case '\\', '\'', '"' -> b.append(e);
                case 'n' -> b.append('\n');
                case 'r' -> b.append('\r');
                case 't' -> b.append('\t');
                case 'a' -> b.append('\u0007');
                case 'b' -> b.append('\b');
                case 'f' -> b.append('\f');
                case 'v' -> b.append('\u000b');
                case '\n' -> { } // a backslash-newline continues the line
                case 'x', 'u', 'U' -> {
                    int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                    if (i + digits >= end) {
                        throw new TemplateException("truncated \\" + e + " escape in string at offset " + offset);
                    }
                    try {
                        b.appendCodePoint(Integer.parseInt(raw.substring(i + 1, i + 1 + digits), 16));
                    } catch (IllegalArgumentException bad) {
                        throw new TemplateException("bad \\" + e + " escape in string at offset " + offset);
                    }
                    i += digits;
                }
                case 'N' -> {
                    int close = raw.indexOf('}', i);
                    if (i + 1 >= end || raw.charAt(i + 1) != '{' || close < 0) {
                        throw new TemplateException("malformed \\N escape in string at offset " + offset);
                    }
                    try {
                        b.appendCodePoint(Character.codePointOf(raw.substring(i + 2, close)));
                    } catch (IllegalArgumentException unknown) {
                        throw new TemplateException("unknown character name in string at offset " + offset);
                    }
                    i = close;
                }
                default -> {
                    if (e >= '0' && e <= '7') {
                        int j = i;
                        while (j < end && j < i + 3 && raw.charAt(j) >= '0' && raw.charAt(j) <= '7') j++;
                        b.append((char) Integer.parseInt(raw.substring(i, j), 8));
                        i = j - 1;
                    } else {
                        b.append('\\').append(e); // Python keeps unknown escapes as they are
                    }
                }
            }
        }
        return b.toString();
    }
}
