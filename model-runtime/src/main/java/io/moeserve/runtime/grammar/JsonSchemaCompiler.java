package io.moeserve.runtime.grammar;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A JSON schema (the strict subset OpenAI's structured outputs accept) into the {@link SchemaNode} grammar.
 *
 * <p>Supported: {@code type} (one or a list) object with {@code properties}, {@code required} and
 * {@code additionalProperties: false} (an object without properties, or with {@code additionalProperties: true},
 * is any object), string with {@code enum}, {@code const}, {@code minLength}, {@code maxLength}, number, integer,
 * boolean, null, array with {@code items}, {@code minItems}, {@code maxItems}; {@code enum}, {@code const},
 * {@code anyOf}, {@code $ref} into {@code $defs}/{@code definitions} (recursion included); annotations
 * (title, description, default, examples, $schema, $id, $comment) are ignored. Anything else is refused, every
 * refused keyword named with its place, rather than generating output that might not validate.
 *
 * <p>Properties are generated in the schema's order (as OpenAI's strict mode and xgrammar do), each at most once;
 * optional ones may be left out. The output is compact JSON, with at most one space after a colon or comma.
 */
public final class JsonSchemaCompiler {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int MAX_OPTIONS = 64;
    private static final Set<String> ANNOTATIONS = Set.of("title", "description", "default", "examples", "$schema",
            "$id", "$comment", "$defs", "definitions");
    private static final Set<String> TYPES = Set.of("object", "array", "string", "number", "integer", "boolean", "null");

    /** Any JSON value: the values of a free object and the items of an unconstrained array. */
    static final SchemaNode ANY;
    /** A free object's keys. */
    static final SchemaNode KEY = new SchemaNode.Str(0, -1);
    /** Any JSON object ({@code response_format: json_object}). */
    static final SchemaNode ANY_OBJECT;

    static {
        SchemaNode.Arr anyArray = new SchemaNode.Arr(null, 0, -1);
        SchemaNode.Obj freeObject = new SchemaNode.Obj(new byte[0][], new SchemaNode[0], new boolean[0], true);
        SchemaNode.AnyOf any = new SchemaNode.AnyOf(new SchemaNode[] {freeObject, anyArray, new SchemaNode.Str(0, -1),
            new SchemaNode.Num(false), literals("true", "false", "null")});
        anyArray.items = any;
        ANY = any;
        ANY_OBJECT = freeObject;
    }

    private final JsonNode root;
    private final List<String> unsupported = new ArrayList<>();
    private final Map<String, SchemaNode.Ref> refs = new HashMap<>();

    private JsonSchemaCompiler(JsonNode root) {
        this.root = root;
    }

    /** Compiles a schema given as JSON text. */
    public static CompiledSchema compile(String schemaJson) {
        JsonNode node;
        try {
            node = JSON.readTree(schemaJson);
        } catch (JsonProcessingException e) {
            throw new UnsupportedSchemaException("The JSON schema is not valid JSON: " + e.getOriginalMessage(), List.of());
        }
        if (node == null || !(node.isObject() || node.isBoolean())) {
            throw new UnsupportedSchemaException("The JSON schema must be a JSON object.", List.of());
        }
        JsonSchemaCompiler c = new JsonSchemaCompiler(node);
        SchemaNode compiled = c.node(node, "");
        c.bindRefs();
        if (!c.unsupported.isEmpty()) {
            throw new UnsupportedSchemaException("Unsupported JSON schema features: " + String.join(", ", c.unsupported)
                    + ". Supported: type, properties, required, additionalProperties false, items, minItems, maxItems, "
                    + "minLength, maxLength, enum, const, anyOf, $ref into $defs.", c.unsupported);
        }
        return new CompiledSchema(compiled);
    }

    /** The grammar of {@code response_format: {"type": "json_object"}}: any JSON object. */
    public static CompiledSchema anyObject() {
        return new CompiledSchema(ANY_OBJECT);
    }

    private void refuse(String feature, String path) {
        unsupported.add("'" + feature + "' at " + (path.isEmpty() ? "/" : path));
    }

    private SchemaNode node(JsonNode s, String path) {
        if (s.isBoolean()) {
            if (!s.booleanValue()) refuse("false schema", path);
            return ANY;
        }
        if (!s.isObject()) {
            refuse("non-object schema", path);
            return ANY;
        }
        if (s.has("$ref")) return ref(s.get("$ref"), path);
        if (s.has("anyOf")) return anyOf(s, path);
        if (s.has("const")) return literals(List.of(s.get("const")));
        if (s.has("enum")) {
            JsonNode e = s.get("enum");
            if (!e.isArray() || e.isEmpty()) {
                refuse("enum that is not a non-empty array", path);
                return ANY;
            }
            if (e.size() > MAX_OPTIONS) refuse("enum of more than " + MAX_OPTIONS + " values", path);
            List<JsonNode> values = new ArrayList<>();
            e.forEach(values::add);
            return literals(values.subList(0, Math.min(values.size(), MAX_OPTIONS)));
        }
        JsonNode type = s.get("type");
        if (type == null) {
            checkKeywords(s, path, Set.of());
            return ANY;
        }
        if (type.isArray()) {
            List<SchemaNode> options = new ArrayList<>();
            for (JsonNode t : type) options.add(typed(s, t.asText(), path));
            return options.size() == 1 ? options.getFirst() : new SchemaNode.AnyOf(options.toArray(SchemaNode[]::new));
        }
        return typed(s, type.asText(), path);
    }

    private SchemaNode typed(JsonNode s, String type, String path) {
        if (!TYPES.contains(type)) {
            refuse("type " + type, path);
            return ANY;
        }
        switch (type) {
            case "object" -> {
                checkKeywords(s, path, Set.of("properties", "required", "additionalProperties"));
                return object(s, path);
            }
            case "array" -> {
                checkKeywords(s, path, Set.of("items", "minItems", "maxItems"));
                JsonNode items = s.get("items");
                SchemaNode item = items == null ? ANY : node(items, path + "/items");
                int min = count(s, "minItems", 0, path);
                int max = count(s, "maxItems", -1, path);
                if (max >= 0 && max < min) refuse("maxItems below minItems", path);
                return new SchemaNode.Arr(item, min, max);
            }
            case "string" -> {
                checkKeywords(s, path, Set.of("minLength", "maxLength"));
                int min = count(s, "minLength", 0, path);
                int max = count(s, "maxLength", -1, path);
                if (max >= 0 && max < min) refuse("maxLength below minLength", path);
                return new SchemaNode.Str(min, max);
            }
            case "number", "integer" -> {
                checkKeywords(s, path, Set.of());
                return new SchemaNode.Num("integer".equals(type));
            }
            case "boolean" -> {
                checkKeywords(s, path, Set.of());
                return literals("true", "false");
            }
            default -> {
                checkKeywords(s, path, Set.of());
                return literals("null");
            }
        }
    }

    private SchemaNode object(JsonNode s, String path) {
        JsonNode props = s.get("properties");
        JsonNode additional = s.get("additionalProperties");
        boolean additionalTrue = additional != null && additional.isBoolean() && additional.booleanValue();
        if (additional != null && !additional.isBoolean()) refuse("additionalProperties with a schema", path);
        if (props == null || props.isEmpty()) {
            if (s.has("required") && !s.get("required").isEmpty()) refuse("required without properties", path);
            // An object with nothing declared: any object unless additionalProperties is false (then only {}).
            if (additional != null && additional.isBoolean() && !additional.booleanValue()) {
                return new SchemaNode.Obj(new byte[0][], new SchemaNode[0], new boolean[0], false);
            }
            return ANY_OBJECT;
        }
        if (!props.isObject()) {
            refuse("properties that is not an object", path);
            return ANY_OBJECT;
        }
        if (additionalTrue) refuse("additionalProperties true beside properties", path);
        if (props.size() > MAX_OPTIONS) refuse("more than " + MAX_OPTIONS + " properties", path);
        Set<String> required = new LinkedHashSet<>();
        JsonNode req = s.get("required");
        if (req != null) {
            if (!req.isArray()) refuse("required that is not an array", path);
            else for (JsonNode r : req) required.add(r.asText());
        }
        int n = Math.min(props.size(), MAX_OPTIONS);
        byte[][] names = new byte[n][];
        SchemaNode[] values = new SchemaNode[n];
        boolean[] isRequired = new boolean[n];
        Iterator<Map.Entry<String, JsonNode>> it = props.fields();
        for (int i = 0; i < n; i++) {
            Map.Entry<String, JsonNode> e = it.next();
            names[i] = quoted(e.getKey());
            values[i] = node(e.getValue(), path + "/properties/" + e.getKey());
            isRequired[i] = required.remove(e.getKey());
        }
        for (String missing : required) refuse("required property " + missing + " that is not in properties", path);
        return new SchemaNode.Obj(names, values, isRequired, false);
    }

    private SchemaNode anyOf(JsonNode s, String path) {
        JsonNode list = s.get("anyOf");
        checkKeywords(s, path, Set.of("anyOf"));
        if (!list.isArray() || list.isEmpty()) {
            refuse("anyOf that is not a non-empty array", path);
            return ANY;
        }
        SchemaNode[] options = new SchemaNode[list.size()];
        for (int i = 0; i < options.length; i++) options[i] = node(list.get(i), path + "/anyOf/" + i);
        return options.length == 1 ? options[0] : new SchemaNode.AnyOf(options);
    }

    private SchemaNode ref(JsonNode ref, String path) {
        String target = ref.asText();
        if (!target.equals("#") && !target.startsWith("#/$defs/") && !target.startsWith("#/definitions/")) {
            refuse("$ref " + target + " (only #, #/$defs/... and #/definitions/...)", path);
            return ANY;
        }
        return refs.computeIfAbsent(target, k -> new SchemaNode.Ref());
    }

    /** Compiles each referenced definition once (they may refer to one another) and binds the references. */
    private void bindRefs() {
        Set<String> done = new java.util.HashSet<>();
        boolean more = true;
        while (more) {
            more = false;
            for (Map.Entry<String, SchemaNode.Ref> e : List.copyOf(refs.entrySet())) {
                if (!done.add(e.getKey())) continue;
                more = true;
                JsonNode def = root.at(e.getKey().substring(1));
                if (def.isMissingNode()) {
                    refuse("$ref " + e.getKey() + " to nothing", e.getKey().substring(1));
                    e.getValue().target = ANY;
                } else {
                    e.getValue().target = node(def, e.getKey().substring(1));
                }
            }
        }
    }

    private void checkKeywords(JsonNode s, String path, Set<String> allowed) {
        for (Iterator<String> it = s.fieldNames(); it.hasNext(); ) {
            String k = it.next();
            if (k.equals("type") || ANNOTATIONS.contains(k) || allowed.contains(k)) continue;
            refuse(k, path);
        }
    }

    private int count(JsonNode s, String key, int absent, String path) {
        JsonNode v = s.get(key);
        if (v == null) return absent;
        if (!v.canConvertToInt() || !v.isIntegralNumber() || v.intValue() < 0) {
            refuse(key + " that is not a non-negative integer", path);
            return absent;
        }
        return v.intValue();
    }

    private static byte[] quoted(String name) {
        try {
            return JSON.writeValueAsString(name).getBytes(StandardCharsets.UTF_8);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private static SchemaNode literals(List<JsonNode> values) {
        byte[][] options = new byte[values.size()][];
        for (int i = 0; i < options.length; i++) {
            try {
                options[i] = JSON.writeValueAsString(values.get(i)).getBytes(StandardCharsets.UTF_8);
            } catch (JsonProcessingException e) {
                throw new IllegalStateException(e);
            }
        }
        return new SchemaNode.Literals(options);
    }

    private static SchemaNode literals(String... texts) {
        byte[][] options = new byte[texts.length][];
        for (int i = 0; i < texts.length; i++) options[i] = texts[i].getBytes(StandardCharsets.UTF_8);
        return new SchemaNode.Literals(options);
    }
}
