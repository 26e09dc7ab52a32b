package io.moeserve.runtime.grammar;

import java.util.List;

/** A schema that is not valid JSON, or that uses features constrained decoding does not implement (named). */
public final class UnsupportedSchemaException extends RuntimeException {
    private final List<String> features;

    UnsupportedSchemaException(String message, List<String> features) {
        super(message);
        this.features = List.copyOf(features);
    }

    /** The features refused, each with where it is in the schema ("'pattern' at /properties/name"). */
    public List<String> features() {
        return features;
    }
}
