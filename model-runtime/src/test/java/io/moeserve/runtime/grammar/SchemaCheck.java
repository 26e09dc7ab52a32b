package io.moeserve.runtime.grammar;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.HashSet;
import java.util.Iterator;
import java.util.Map;
import java.util.Set;

/** A JSON schema validator for the supported subset, written apart from the automaton, to check what it generates. */
final class SchemaCheck {
    private SchemaCheck() {
    }

    static boolean valid(JsonNode schema, JsonNode v, JsonNode root) {
        if (schema.has("$ref")) return valid(root.at(schema.get("$ref").asText().substring(1)), v, root);
        if (schema.has("anyOf")) {
            for (JsonNode option : schema.get("anyOf")) if (valid(option, v, root)) return true;
            return false;
        }
        if (schema.has("const")) return schema.get("const").equals(v);
        if (schema.has("enum")) {
            for (JsonNode e : schema.get("enum")) if (e.equals(v)) return true;
            return false;
        }
        if (!schema.has("type")) return true;
        return switch (schema.get("type").asText()) {
            case "object" -> v.isObject() && object(schema, v, root);
            case "array" -> v.isArray() && array(schema, v, root);
            case "string" -> v.isTextual() && v.textValue().codePointCount(0, v.textValue().length())
                    >= schema.path("minLength").asInt(0) && (!schema.has("maxLength")
                    || v.textValue().codePointCount(0, v.textValue().length()) <= schema.get("maxLength").asInt());
            case "integer" -> v.isIntegralNumber();
            case "number" -> v.isNumber();
            case "boolean" -> v.isBoolean();
            case "null" -> v.isNull();
            default -> false;
        };
    }

    private static boolean object(JsonNode schema, JsonNode v, JsonNode root) {
        JsonNode props = schema.path("properties");
        Set<String> seen = new HashSet<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = v.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            seen.add(e.getKey());
            if (props.has(e.getKey())) {
                if (!valid(props.get(e.getKey()), e.getValue(), root)) return false;
            } else if (schema.path("additionalProperties").isBoolean() && !schema.get("additionalProperties").asBoolean()) {
                return false;
            }
        }
        for (JsonNode r : schema.path("required")) if (!seen.contains(r.asText())) return false;
        return true;
    }

    private static boolean array(JsonNode schema, JsonNode v, JsonNode root) {
        if (v.size() < schema.path("minItems").asInt(0)) return false;
        if (schema.has("maxItems") && v.size() > schema.get("maxItems").asInt()) return false;
        if (schema.has("items")) for (JsonNode item : v) if (!valid(schema.get("items"), item, root)) return false;
        return true;
    }
}
