package io.moeserve.gateway.openai;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.math.BigInteger;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalLong;

/**
 * Typed reads of one JSON object's fields, each failure a 400 naming the parameter ({@code param}) as OpenAI
 * does: "Invalid type for 'temperature': expected a number, but got a string instead." A JSON null counts as
 * absent, as it does for OpenAI's optional parameters.
 */
final class JsonFields {
    private final ObjectNode node;
    private final String prefix;

    /** @param prefix the path of this object in the request, e.g. {@code messages[2].}; empty at the top */
    JsonFields(ObjectNode node, String prefix) {
        this.node = node;
        this.prefix = prefix;
    }

    String param(String field) {
        return prefix + field;
    }

    /** Present and not null. */
    boolean has(String field) {
        JsonNode v = node.get(field);
        return v != null && !v.isNull();
    }

    /** Not in the object at all (an explicit null is there). */
    boolean absent(String field) {
        return node.get(field) == null;
    }

    JsonNode raw(String field) {
        JsonNode v = node.get(field);
        return v == null || v.isNull() ? null : v;
    }

    Optional<String> string(String field) {
        JsonNode v = raw(field);
        if (v == null) return Optional.empty();
        if (!v.isTextual()) throw wrongType(field, "a string", v);
        return Optional.of(text(v.textValue(), param(field)));
    }

    String requiredString(String field) {
        return string(field).orElseThrow(() -> missing(field));
    }

    OptionalDouble number(String field) {
        JsonNode v = raw(field);
        if (v == null) return OptionalDouble.empty();
        if (!v.isNumber()) throw wrongType(field, "a number", v);
        return OptionalDouble.of(v.doubleValue());
    }

    /** A number in [min, max], or the default. */
    double number(String field, double min, double max, double defaultValue) {
        OptionalDouble v = number(field);
        if (v.isEmpty()) return defaultValue;
        double d = v.getAsDouble();
        if (!(d >= min && d <= max)) {
            throw OpenAiException.invalid(param(field), "Invalid '" + param(field) + "': expected a value in ["
                    + fmt(min) + ", " + fmt(max) + "], but got " + fmt(d) + " instead.");
        }
        return d;
    }

    /**
     * An integer; values beyond a long are clamped to Long.MIN_VALUE / Long.MAX_VALUE, so that range checks
     * still reject them with the value's sign. 5.0 is not an integer (as for OpenAI).
     */
    OptionalLong integer(String field) {
        JsonNode v = raw(field);
        if (v == null) return OptionalLong.empty();
        if (!v.isIntegralNumber()) throw wrongType(field, "an integer", v);
        if (v.canConvertToLong()) return OptionalLong.of(v.longValue());
        return OptionalLong.of(v.bigIntegerValue().signum() < 0 ? Long.MIN_VALUE : Long.MAX_VALUE);
    }

    /** An integer in [min, max], or the default. */
    long integer(String field, long min, long max, long defaultValue) {
        OptionalLong v = integer(field);
        if (v.isEmpty()) return defaultValue;
        long l = v.getAsLong();
        if (l < min || l > max) throw outOfRange(field, min, max, rawText(field));
        return l;
    }

    /** An integer that must fit a long exactly (seed). */
    OptionalLong exactLong(String field) {
        JsonNode v = raw(field);
        if (v == null) return OptionalLong.empty();
        if (!v.isIntegralNumber()) throw wrongType(field, "an integer", v);
        BigInteger b = v.bigIntegerValue();
        if (b.bitLength() > 63) {
            throw OpenAiException.invalid(param(field), "Invalid '" + param(field)
                    + "': expected a 64-bit signed integer, but got " + b + " instead.");
        }
        return OptionalLong.of(b.longValue());
    }

    Optional<Boolean> bool(String field) {
        JsonNode v = raw(field);
        if (v == null) return Optional.empty();
        if (!v.isBoolean()) throw wrongType(field, "a boolean", v);
        return Optional.of(v.booleanValue());
    }

    boolean bool(String field, boolean defaultValue) {
        return bool(field).orElse(defaultValue);
    }

    Optional<ObjectNode> object(String field) {
        JsonNode v = raw(field);
        if (v == null) return Optional.empty();
        if (!(v instanceof ObjectNode o)) throw wrongType(field, "an object", v);
        return Optional.of(o);
    }

    Optional<ArrayNode> array(String field) {
        JsonNode v = raw(field);
        if (v == null) return Optional.empty();
        if (!(v instanceof ArrayNode a)) throw wrongType(field, "an array", v);
        return Optional.of(a);
    }

    OpenAiException missing(String field) {
        return OpenAiException.invalid(param(field), "Missing required parameter: '" + param(field) + "'.");
    }

    OpenAiException wrongType(String field, String expected, JsonNode got) {
        return wrongTypeAt(param(field), expected, got);
    }

    OpenAiException outOfRange(String field, long min, long max, String got) {
        return OpenAiException.invalid(param(field), "Invalid '" + param(field) + "': expected a value in ["
                + min + ", " + max + "], but got " + got + " instead.");
    }

    private String rawText(String field) {
        JsonNode v = raw(field);
        return v == null ? "null" : v.asText();
    }

    static OpenAiException wrongTypeAt(String param, String expected, JsonNode got) {
        return new OpenAiException(400, new OpenAiError("Invalid type for '" + param + "': expected " + expected
                + ", but got " + typeName(got) + " instead.", OpenAiError.INVALID_REQUEST, param, "invalid_type"));
    }

    /**
     * Text that goes to the tokenizer must be valid Unicode: JSON's \\uD800 escapes can spell an unpaired
     * surrogate, which the tokenizer's Rust side cannot represent.
     */
    static String text(String s, String param) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isSurrogate(c)) {
                if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                    i++;
                    continue;
                }
                throw OpenAiException.invalid(param, "Invalid '" + param + "': the text contains an unpaired "
                        + "UTF-16 surrogate (\\u" + Integer.toHexString(c) + ") at index " + i + ".");
            }
        }
        return s;
    }

    static String typeName(JsonNode v) {
        if (v == null || v.isNull()) return "null";
        if (v.isTextual()) return "a string";
        if (v.isIntegralNumber()) return "an integer";
        if (v.isNumber()) return "a decimal";
        if (v.isBoolean()) return "a boolean";
        if (v.isArray()) return "an array";
        if (v.isObject()) return "an object";
        return v.getNodeType().name().toLowerCase();
    }

    private static String fmt(double d) {
        return d == Math.rint(d) && Math.abs(d) < 1e15 ? Long.toString((long) d) : Double.toString(d);
    }
}
