package io.moeserve.tokenizer.jinja;

import java.util.AbstractList;
import java.util.List;

/**
 * An immutable Python tuple (what {@code str.partition} and {@code dict.items()} yield): a list that prints as
 * {@code ('a', 'b')}, so that a template printing one matches Python's output.
 */
final class PyTuple extends AbstractList<Object> {

    private final List<Object> items;

    PyTuple(Object... items) {
        this.items = List.of(items);
    }

    @Override
    public Object get(int index) {
        return items.get(index);
    }

    @Override
    public int size() {
        return items.size();
    }

    @Override
    public String toString() {
        return PyValues.repr(this);
    }
}
