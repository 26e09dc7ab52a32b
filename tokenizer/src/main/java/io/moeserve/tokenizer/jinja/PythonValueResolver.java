package io.moeserve.tokenizer.jinja;

import java.beans.FeatureDescriptor;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELException;
import jinjava.javax.el.ELResolver;

/**
 * Gives strings, lists, dicts and None their Python attributes and methods inside Jinjava expressions.
 *
 * <p>Jinjava resolves {@code x.name} and {@code x.method(...)} through a chain of EL resolvers; this one sits
 * first. For strings and lists it answers indexing with Python's rules ({@code s[-1]}, out of range is
 * undefined); for strings, lists and dicts every method call (see {@link PyStringMethods},
 * {@link PyContainerMethods}); and the slice method that {@link JinjaSourceRewriter}
 * puts where the template had {@code x[a:b:c]}. Anything else it leaves to Jinjava's own resolvers.
 * An attribute that Python does not have on such a value reads as undefined; a method that Python does not have
 * is an error, so that a template never silently reaches a Java method with a different meaning.
 */
final class PythonValueResolver extends ELResolver {

    static final String SLICE_METHOD = "_py_slice_";

    @Override
    public Object getValue(ELContext context, Object base, Object property) {
        Object target = PyValues.unwrap(base);
        switch (target) {
            case CharSequence s -> {
                context.setPropertyResolved(true);
                Long index = asIndex(property);
                return index == null ? null : PySequences.charAt(s.toString(), index);
            }
            case List<?> list -> {
                context.setPropertyResolved(true);
                Long index = asIndex(property);
                return index == null ? null : PySequences.itemAt(list, index);
            }
            case PyNone n -> {
                context.setPropertyResolved(true);
                return null;
            }
            case Number n -> {
                context.setPropertyResolved(true);
                return null;
            }
            case Boolean b -> {
                context.setPropertyResolved(true);
                return null;
            }
            case null, default -> {
                return null;
            }
        }
    }

    @Override
    public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
        Object target = PyValues.unwrap(base);
        if (!(target instanceof CharSequence || target instanceof List<?> || target instanceof Map<?, ?>
                || target instanceof PyNone || target instanceof Number || target instanceof Boolean)) {
            return null;
        }
        String name = String.valueOf(method);
        PyCallArgs args = new PyCallArgs(name, params);
        try {
            Object result;
            if (name.equals(SLICE_METHOD)) {
                List<Object> bounds = args.positional();
                result = PySequences.slice(target, bounds.get(0), bounds.get(1), bounds.get(2));
            } else {
                result = switch (target) {
                    case CharSequence s -> PyStringMethods.invoke(s.toString(), name, args);
                    case List<?> list -> PyContainerMethods.invokeOnList(list, name, args);
                    case Map<?, ?> map -> PyContainerMethods.invokeOnDict(map, name, args);
                    default -> throw new IllegalArgumentException(
                            "'" + PyCallArgs.typeName(target) + "' object has no attribute '" + name + "'");
                };
            }
            context.setPropertyResolved(true);
            return result;
        } catch (IllegalArgumentException | ArithmeticException | IndexOutOfBoundsException e) {
            throw new ELException(e.getMessage(), e);
        }
    }

    /** Jinjava passes subscripts as strings ("-1"); an integer one is an index, anything else an attribute. */
    private static Long asIndex(Object property) {
        if (property instanceof Number n && PyValues.isInteger(n)) return n.longValue();
        if (property instanceof CharSequence cs) {
            String s = cs.toString();
            if (!s.isEmpty() && s.length() < 19 && s.matches("-?\\d+")) return Long.parseLong(s);
        }
        return null;
    }

    @Override
    public Class<?> getType(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public void setValue(ELContext context, Object base, Object property, Object value) {
        // Not resolved here: templates only assign to namespaces and variables, which Jinjava handles.
    }

    @Override
    public boolean isReadOnly(ELContext context, Object base, Object property) {
        return true;
    }

    @Override
    public Iterator<FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
        return null;
    }

    @Override
    public Class<?> getCommonPropertyType(ELContext context, Object base) {
        return null;
    }
}
