package io.moeserve.tokenizer.jinja;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Python's read-only {@code list} and {@code dict} methods for templates ({@code d.items()}, {@code d.get(k, x)},
 * {@code l.index(x)}). Methods that change a list or dict fail, as in transformers' ImmutableSandboxedEnvironment.
 */
final class PyContainerMethods {

    private static final Set<String> LIST_MUTATORS =
            Set.of("append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse");
    private static final Set<String> DICT_MUTATORS = Set.of("update", "pop", "popitem", "setdefault", "clear");

    private PyContainerMethods() {
    }

    static Object invokeOnList(List<?> list, String method, PyCallArgs args) {
        if (LIST_MUTATORS.contains(method)) throw unsafe(method, "list");
        return switch (method) {
            case "index" -> {
                Object wanted = args.expect(1, "value").get(0, "value");
                for (int i = 0; i < list.size(); i++) {
                    if (pyEquals(list.get(i), wanted)) yield (long) i;
                }
                throw new IllegalArgumentException(PyValues.repr(wanted) + " is not in list");
            }
            case "count" -> {
                Object wanted = args.expect(1, "value").get(0, "value");
                yield list.stream().filter(item -> pyEquals(item, wanted)).count();
            }
            case "copy" -> {
                args.expect(0);
                yield new ArrayList<>(list);
            }
            default -> throw new IllegalArgumentException("'list' object has no attribute '" + method + "'");
        };
    }

    static Object invokeOnDict(Map<?, ?> map, String method, PyCallArgs args) {
        if (DICT_MUTATORS.contains(method)) throw unsafe(method, "dict");
        return switch (method) {
            case "items" -> {
                args.expect(0);
                List<Object> items = new ArrayList<>(map.size());
                map.forEach((k, v) -> items.add(new PyTuple(k, v)));
                yield items;
            }
            case "keys" -> {
                args.expect(0);
                yield new ArrayList<>(map.keySet());
            }
            case "values" -> {
                args.expect(0);
                yield new ArrayList<>(map.values());
            }
            case "get" -> {
                args.expect(1, "key", "default");
                Object key = args.get(0, "key");
                Object fallback = args.get(1, "default");
                if (fallback == null) fallback = PyNone.INSTANCE;
                String name = PyValues.isString(key) ? key.toString() : null;
                yield name != null && map.containsKey(name) ? map.get(name) : fallback;
            }
            case "copy" -> {
                args.expect(0);
                yield new LinkedHashMap<>(map);
            }
            default -> throw new IllegalArgumentException("'dict' object has no attribute '" + method + "'");
        };
    }

    private static IllegalArgumentException unsafe(String method, String type) {
        return new IllegalArgumentException(
                "SecurityError: access to attribute '" + method + "' of '" + type + "' object is unsafe");
    }

    /** Python equality for template values: numbers by value (1 == 1.0), strings by text. */
    static boolean pyEquals(Object a, Object b) {
        Object x = PyValues.unwrap(a);
        Object y = PyValues.unwrap(b);
        if (x instanceof Number n && y instanceof Number m && !(x instanceof Boolean) && !(y instanceof Boolean)) {
            return n.doubleValue() == m.doubleValue();
        }
        if (x instanceof CharSequence s && y instanceof CharSequence t) return s.toString().equals(t.toString());
        return Objects.equals(x, y);
    }
}
