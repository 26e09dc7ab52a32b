package io.moeserve.tokenizer.jinja;

import com.hubspot.jinjava.util.HasObjectTruthValue;

/**
 * A string whose text is "false" in some letter case, wrapped so that Jinjava treats it as true, as Python does.
 *
 * <p>Jinjava's truth test treats the {@link String} "false" (ignoring case) as false. A tool that returns "false"
 * or a user who types "False" would then silently change which branch a template takes. Only such strings are
 * wrapped (see {@link PyValues#str}); every other string stays a plain {@code String}, which is what Jinjava's
 * filters and operators handle best. Equality and hashing follow the text so comparisons with literals still work.
 */
final class TruthyFalseString implements CharSequence, Comparable<CharSequence>, HasObjectTruthValue {

    private final String text;

    TruthyFalseString(String text) {
        this.text = text;
    }

    static boolean needsWrapping(String s) {
        return s.length() == 5 && s.equalsIgnoreCase("false");
    }

    @Override
    public boolean getObjectTruthValue() {
        return true;
    }

    @Override
    public int length() {
        return text.length();
    }

    @Override
    public char charAt(int index) {
        return text.charAt(index);
    }

    @Override
    public CharSequence subSequence(int start, int end) {
        return text.subSequence(start, end);
    }

    @Override
    public int compareTo(CharSequence other) {
        return text.compareTo(other.toString());
    }

    @Override
    public boolean equals(Object other) {
        // Equal to the same text as a plain String too, so list membership and map lookups find it.
        return other instanceof TruthyFalseString t ? text.equals(t.text) : other instanceof String s && text.equals(s);
    }

    @Override
    public int hashCode() {
        return text.hashCode();
    }

    @Override
    public String toString() {
        return text;
    }
}
