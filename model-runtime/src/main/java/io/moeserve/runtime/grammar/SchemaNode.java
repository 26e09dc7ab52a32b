package io.moeserve.runtime.grammar;

/**
 * What a JSON value may be, compiled from a schema by {@link JsonSchemaCompiler}: the grammar the automaton runs.
 * Nodes are compared by identity (frames hold them); a compiled schema is immutable once {@link Ref}s are bound.
 */
sealed interface SchemaNode {

    /** One of a fixed set of byte strings: const, enum, true, false, null (at most 64). */
    record Literals(byte[][] options) implements SchemaNode {
        @Override
        public boolean equals(Object o) {
            return this == o;
        }

        @Override
        public int hashCode() {
            return System.identityHashCode(this);
        }
    }

    /** A JSON string of {@code minLength..maxLength} code points (maxLength -1: no bound). */
    record Str(int minLength, int maxLength) implements SchemaNode {
        @Override
        public boolean equals(Object o) {
            return this == o;
        }

        @Override
        public int hashCode() {
            return System.identityHashCode(this);
        }
    }

    /** A JSON number; {@code integer}: digits only, no fraction or exponent. */
    record Num(boolean integer) implements SchemaNode {
        @Override
        public boolean equals(Object o) {
            return this == o;
        }

        @Override
        public int hashCode() {
            return System.identityHashCode(this);
        }
    }

    /**
     * An object. Fixed: the properties in the schema's order, each at most once, the required ones present ({@code
     * quotedNames} are the names as JSON strings, quotes included; at most 64). Free ({@code free}): any keys, any
     * values.
     */
    record Obj(byte[][] quotedNames, SchemaNode[] values, boolean[] required, boolean free) implements SchemaNode {
        @Override
        public boolean equals(Object o) {
            return this == o;
        }

        @Override
        public int hashCode() {
            return System.identityHashCode(this);
        }

        /** Index of the first required property at or after {@code from}; the property count if none. */
        int firstRequired(int from) {
            int i = from;
            while (i < required.length && !required[i]) i++;
            return i;
        }
    }

    /** An array of {@code min..max} items (max -1: no bound). */
    final class Arr implements SchemaNode {
        SchemaNode items;
        final int min;
        final int max;

        Arr(SchemaNode items, int min, int max) {
            this.items = items;
            this.min = min;
            this.max = max;
        }
    }

    /** Any of several values (anyOf, a list of types, any JSON value). */
    record AnyOf(SchemaNode[] options) implements SchemaNode {
        @Override
        public boolean equals(Object o) {
            return this == o;
        }

        @Override
        public int hashCode() {
            return System.identityHashCode(this);
        }
    }

    /** A $ref, bound after the whole schema is compiled (definitions may refer to themselves). */
    final class Ref implements SchemaNode {
        SchemaNode target;
    }
}
