package io.moeserve.tokenizer.jinja;

import java.util.ArrayList;
import java.util.List;

/**
 * Python indexing and slicing of lists and strings: negative indices, {@code [::-1]}, out-of-range bounds that
 * clamp, and strings counted in code points.
 */
final class PySequences {

    private PySequences() {
    }

    /** {@code s[i]} for a string: one code point, or null (undefined) when out of range, as Jinja2 does. */
    static Object charAt(String s, long index) {
        int length = s.codePointCount(0, s.length());
        if (index < 0) index += length;
        if (index < 0 || index >= length) return null;
        int at = s.offsetByCodePoints(0, (int) index);
        return PyValues.wrapString(Character.toString(s.codePointAt(at)));
    }

    /** {@code list[i]}: negative from the end, null (undefined) when out of range. */
    static Object itemAt(List<?> list, long index) {
        if (index < 0) index += list.size();
        if (index < 0 || index >= list.size()) return null;
        return list.get((int) index);
    }

    /** {@code base[start:stop:step]} with Python's rules; each bound may be null or PyNone for "omitted". */
    static Object slice(Object base, Object start, Object stop, Object step) {
        Object target = PyValues.unwrap(base);
        if (target instanceof CharSequence cs) {
            int[] cps = cs.toString().codePoints().toArray();
            int[] picked = indices(cps.length, start, stop, step);
            StringBuilder out = new StringBuilder(picked.length);
            for (int i : picked) out.appendCodePoint(cps[i]);
            return PyValues.wrapString(out.toString());
        }
        if (target instanceof List<?> list) {
            int[] picked = indices(list.size(), start, stop, step);
            List<Object> out = new ArrayList<>(picked.length);
            for (int i : picked) out.add(list.get(i));
            return target instanceof PyTuple ? new PyTuple(out.toArray()) : out;
        }
        throw new IllegalArgumentException("'" + PyCallArgs.typeName(base) + "' object is not subscriptable");
    }

    /** The positions a slice selects, following CPython's PySlice_AdjustIndices. */
    private static int[] indices(int length, Object startArg, Object stopArg, Object stepArg) {
        long step = bound(stepArg, 1);
        if (step == 0) throw new IllegalArgumentException("slice step cannot be zero");
        long lower = step < 0 ? -1 : 0;
        long upper = step < 0 ? length - 1 : length;
        long start = adjust(startArg, step < 0 ? upper : lower, length, lower, upper);
        long stop = adjust(stopArg, step < 0 ? lower : upper, length, lower, upper);
        long count = step > 0 ? (stop > start ? (stop - start - 1) / step + 1 : 0)
                : (start > stop ? (start - stop - 1) / -step + 1 : 0);
        int[] out = new int[(int) count];
        for (int i = 0; i < count; i++) out[i] = (int) (start + i * step);
        return out;
    }

    private static long adjust(Object arg, long absent, long length, long lower, long upper) {
        if (isOmitted(arg)) return absent;
        long v = bound(arg, 0);
        if (v < 0) v += length;
        return Math.max(lower, Math.min(upper, v));
    }

    private static boolean isOmitted(Object arg) {
        return arg == null || arg instanceof PyNone;
    }

    private static long bound(Object arg, long absent) {
        if (isOmitted(arg)) return absent;
        if (arg instanceof Number n && PyValues.isInteger(n)) return n.longValue();
        throw new IllegalArgumentException("slice indices must be integers or None, not " + PyCallArgs.typeName(arg));
    }
}
