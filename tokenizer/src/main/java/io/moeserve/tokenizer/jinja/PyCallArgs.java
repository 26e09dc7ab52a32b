package io.moeserve.tokenizer.jinja;

import com.hubspot.jinjava.el.ext.NamedParameter;
import com.hubspot.jinjava.util.ObjectTruthValue;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The arguments of a Python-style method call made from a template, bound the way Python binds them.
 *
 * <p>Jinjava hands a method call {@code s.split(',', maxsplit=1)} over as one array in which keyword arguments
 * are {@link NamedParameter}s; this splits them and offers Python's checks (too many arguments, unknown keyword,
 * wrong type) so that a template calling a method wrongly fails instead of getting a guess.
 */
final class PyCallArgs {

    private final String method;
    private final List<Object> positional = new ArrayList<>();
    private final Map<String, Object> keywords = new LinkedHashMap<>();

    PyCallArgs(String method, Object[] params) {
        this.method = method;
        if (params == null) return;
        for (Object p : params) {
            if (p instanceof NamedParameter named) {
                keywords.put(named.getName(), named.getValue());
            } else {
                positional.add(p);
            }
        }
    }

    PyCallArgs(String method, Object[] positional, Map<String, Object> keywords) {
        this(method, positional);
        if (keywords != null) this.keywords.putAll(keywords);
    }

    int size() {
        return positional.size();
    }

    /** Checks the call against a signature: names of the parameters in order, how many are required. */
    PyCallArgs expect(int required, String... names) {
        if (positional.size() > names.length) {
            throw error(method + "() takes at most " + names.length + " arguments (" + positional.size() + " given)");
        }
        for (String key : keywords.keySet()) {
            int index = List.of(names).indexOf(key);
            if (index < 0) throw error(method + "() got an unexpected keyword argument '" + key + "'");
            if (index < positional.size()) throw error(method + "() got multiple values for argument '" + key + "'");
        }
        for (int i = 0; i < required; i++) {
            if (get(i, names[i]) == null) throw error(method + "() missing required argument '" + names[i] + "'");
        }
        return this;
    }

    /** The argument at this position or with this keyword; null if absent, PyNone if None was passed. */
    Object get(int index, String name) {
        if (index < positional.size()) return positional.get(index);
        return keywords.get(name);
    }

    List<Object> positional() {
        return positional;
    }

    Map<String, Object> keywords() {
        return keywords;
    }

    String string(int index, String name) {
        Object v = get(index, name);
        if (!PyValues.isString(v)) throw error(method + "() argument '" + name + "' must be str, not " + typeName(v));
        return v.toString();
    }

    /** An optional string argument: absent or None give null. */
    String optionalString(int index, String name) {
        Object v = get(index, name);
        return v == null || v instanceof PyNone ? null : string(index, name);
    }

    long integer(int index, String name, long absent) {
        Object v = get(index, name);
        if (v == null || v instanceof PyNone) return absent;
        if (v instanceof Boolean b) return b ? 1 : 0;
        if (v instanceof Number n && PyValues.isInteger(n)) {
            if (n instanceof BigInteger big) return big.longValueExact();
            return n.longValue();
        }
        throw error(method + "() argument '" + name + "' must be int, not " + typeName(v));
    }

    boolean bool(int index, String name, boolean absent) {
        Object v = get(index, name);
        if (v == null) return absent;
        return ObjectTruthValue.evaluate(v);
    }

    IllegalArgumentException error(String message) {
        return new IllegalArgumentException(message);
    }

    static String typeName(Object v) {
        return switch (PyValues.unwrap(v)) {
            case null -> "Undefined";
            case PyNone n -> "NoneType";
            case CharSequence s -> "str";
            case Boolean b -> "bool";
            case Double d -> "float";
            case Number n -> "int";
            case List<?> l -> "list";
            case Map<?, ?> m -> "dict";
            case Object o -> o.getClass().getSimpleName();
        };
    }
}
