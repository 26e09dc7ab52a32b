package io.moeserve.gateway.openai;

/**
 * What constrained decoding holds the output to (router.proto's StructuredOutput): a JSON value valid against
 * {@code jsonSchema} (JSON text), with {@code prefix} before it and {@code suffix} after it, literally (a tool-call
 * format's markers; empty for response_format). The router compiles and enforces it; the schema features it does
 * not implement come back as a 400 naming them.
 */
public record StructuredOutput(String jsonSchema, String prefix, String suffix) {

    /** {@code response_format: {"type": "json_object"}}: any JSON object. */
    public static final StructuredOutput JSON_OBJECT = new StructuredOutput("{\"type\": \"object\"}", "", "");
}
