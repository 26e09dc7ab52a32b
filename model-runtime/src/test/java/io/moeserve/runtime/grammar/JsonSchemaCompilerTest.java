package io.moeserve.runtime.grammar;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

class JsonSchemaCompilerTest {

    private static final String PERSON = """
            {"type": "object", "properties": {
              "name": {"type": "string", "maxLength": 5},
              "age": {"type": "integer"},
              "score": {"type": "number"},
              "ok": {"type": "boolean"},
              "tags": {"type": "array", "items": {"enum": ["a", "bc", 3]}, "minItems": 1, "maxItems": 2},
              "kind": {"const": "x"},
              "nick": {"anyOf": [{"type": "string"}, {"type": "null"}]}
            }, "required": ["name", "age", "tags"], "additionalProperties": false}""";

    private static boolean accepts(String schema, String text) {
        return JsonSchemaCompiler.compile(schema).accepts(text.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void objectsFollowPropertiesRequiredAndOrder() {
        assertTrue(accepts(PERSON, "{\"name\":\"ab\",\"age\":-12,\"tags\":[\"a\"]}"));
        assertTrue(accepts(PERSON, "{\"name\": \"ab\", \"age\": 0, \"score\": 1.5e-3, \"ok\": true, \"tags\": [3, \"bc\"],"
                + " \"kind\": \"x\", \"nick\": null}"));
        assertTrue(accepts(PERSON, "{\"name\":\"\",\"age\":7,\"tags\":[\"bc\"],\"nick\":\"é\\u00e9\\n\"}"));
        assertFalse(accepts(PERSON, "{\"age\":7,\"name\":\"ab\",\"tags\":[\"a\"]}"), "out of order");
        assertFalse(accepts(PERSON, "{\"name\":\"ab\",\"tags\":[\"a\"]}"), "age missing");
        assertFalse(accepts(PERSON, "{\"name\":\"abcdef\",\"age\":7,\"tags\":[\"a\"]}"), "maxLength");
        assertFalse(accepts(PERSON, "{\"name\":\"a\",\"age\":7.5,\"tags\":[\"a\"]}"), "integer");
        assertFalse(accepts(PERSON, "{\"name\":\"a\",\"age\":07,\"tags\":[\"a\"]}"), "leading zero");
        assertFalse(accepts(PERSON, "{\"name\":\"a\",\"age\":7,\"tags\":[]}"), "minItems");
        assertFalse(accepts(PERSON, "{\"name\":\"a\",\"age\":7,\"tags\":[3,3,3]}"), "maxItems");
        assertFalse(accepts(PERSON, "{\"name\":\"a\",\"age\":7,\"tags\":[\"b\"]}"), "enum");
        assertFalse(accepts(PERSON, "{\"name\":\"a\",\"age\":7,\"tags\":[\"a\"],\"kind\":\"y\"}"), "const");
        assertFalse(accepts(PERSON, "{\"name\":\"a\",\"age\":7,\"tags\":[\"a\"],\"other\":1}"), "additional");
        assertFalse(accepts(PERSON, "{\"name\":\"a\",\"age\":7,\"tags\":[\"a\"],}"), "trailing comma");
        assertFalse(accepts(PERSON, "{\"name\":\"a\",\"age\":7,\"tags\":[\"a\"]} "), "text after the value");
        assertFalse(accepts(PERSON, "{\"name\":\"a\",\"age\":7,\"tags\":[\"a\"]"), "not closed");
        assertFalse(accepts(PERSON, "{\"name\":\"a\tb\",\"age\":7,\"tags\":[\"a\"]}"), "raw control character");
        assertFalse(accepts(PERSON, "{\"name\":\"a\",  \"age\":7,\"tags\":[\"a\"]}"), "two spaces");
    }

    @Test
    void stringsAreWellFormedUtf8() {
        String s = "{\"type\": \"string\"}";
        assertTrue(JsonSchemaCompiler.compile(s).accepts(new byte[] {'"', (byte) 0xE2, (byte) 0x82, (byte) 0xAC, '"'}));
        assertFalse(JsonSchemaCompiler.compile(s).accepts(new byte[] {'"', (byte) 0xE2, (byte) 0x82, '"'}), "cut short");
        assertFalse(JsonSchemaCompiler.compile(s).accepts(new byte[] {'"', (byte) 0xC0, (byte) 0x80, '"'}), "overlong");
        assertFalse(JsonSchemaCompiler.compile(s).accepts(new byte[] {'"', (byte) 0xED, (byte) 0xA0, (byte) 0x80, '"'}), "surrogate");
        assertFalse(accepts(s, "\"\\x\""), "bad escape");
        assertTrue(accepts(s, "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\uABcd\""));
    }

    @Test
    void numbersAndLiteralsThatPrefixOneAnother() {
        String n = "{\"type\": \"number\"}";
        for (String ok : List.of("0", "-0", "12", "1.25", "-3e10", "4E+2", "5.0e-07")) assertTrue(accepts(n, ok), ok);
        for (String bad : List.of("", "-", "01", "1.", ".5", "1e", "1e+", "+1", "1.2.3")) assertFalse(accepts(n, bad), bad);
        String e = "{\"enum\": [1, 12, \"1\"]}";
        assertTrue(accepts(e, "1"));
        assertTrue(accepts(e, "12"));
        assertTrue(accepts(e, "\"1\""));
        assertFalse(accepts(e, "123"));
        assertTrue(accepts("{\"type\": \"array\", \"items\": {\"enum\": [1, 12]}}", "[12, 1,1]"));
    }

    @Test
    void jsonObjectIsAnyObject() {
        CompiledSchema any = JsonSchemaCompiler.anyObject();
        assertTrue(any.accepts("{}".getBytes(StandardCharsets.UTF_8)));
        assertTrue(any.accepts("{\"a\": [1, {\"b\": null}, \"x\", true, -2.5], \"a\": {}}".getBytes(StandardCharsets.UTF_8)));
        assertFalse(any.accepts("[]".getBytes(StandardCharsets.UTF_8)));
        assertFalse(any.accepts("{\"a\"}".getBytes(StandardCharsets.UTF_8)));
        assertFalse(any.accepts("{\"a\": tru}".getBytes(StandardCharsets.UTF_8)));
    }

    @Test
    void refsIntoDefsMayRecurse() {
        String tree = """
                {"$ref": "#/$defs/node", "$defs": {"node": {"type": "object", "properties": {
                  "v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
                  "required": ["v"], "additionalProperties": false}}}""";
        assertTrue(accepts(tree, "{\"v\":1,\"kids\":[{\"v\":2},{\"v\":3,\"kids\":[]}]}"));
        assertFalse(accepts(tree, "{\"v\":1,\"kids\":[{}]}"));
    }

    @Test
    void aValueBetweenLiteralMarkers() {
        CompiledSchema call = JsonSchemaCompiler.compile("{\"type\": \"object\", \"properties\": {\"name\": {\"const\": \"f\"}, "
                + "\"arguments\": {\"type\": \"object\"}}, \"required\": [\"name\", \"arguments\"]}").between("<tool_call>\n", "\n</tool_call>");
        assertTrue(call.accepts("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": 1}}\n</tool_call>".getBytes(StandardCharsets.UTF_8)));
        assertFalse(call.accepts("<tool_call>\n{\"name\": \"f\", \"arguments\": {}}".getBytes(StandardCharsets.UTF_8)), "no end marker");
        assertFalse(call.accepts("{\"name\": \"f\", \"arguments\": {}}\n</tool_call>".getBytes(StandardCharsets.UTF_8)), "no start marker");
        assertFalse(call.accepts("<tool_call>\n{\"name\": \"g\", \"arguments\": {}}\n</tool_call>".getBytes(StandardCharsets.UTF_8)));
    }

    @Test
    void unsupportedFeaturesAreNamedWithTheirPlace() {
        UnsupportedSchemaException e = assertThrows(UnsupportedSchemaException.class, () -> JsonSchemaCompiler.compile("""
                {"type": "object", "properties": {"a": {"type": "string", "pattern": "^x$"},
                 "b": {"type": "integer", "minimum": 3}, "c": {"oneOf": [{"type": "string"}]}},
                 "additionalProperties": false}"""));
        assertEquals(List.of("'pattern' at /properties/a", "'minimum' at /properties/b", "'oneOf' at /properties/c"),
                e.features());
        assertTrue(e.getMessage().contains("'pattern' at /properties/a"), e.getMessage());
        assertThrows(UnsupportedSchemaException.class, () -> JsonSchemaCompiler.compile("{\"type\": \"object\""));
        assertThrows(UnsupportedSchemaException.class, () -> JsonSchemaCompiler.compile("{\"$ref\": \"http://x/y\"}"));
        assertThrows(UnsupportedSchemaException.class, () -> JsonSchemaCompiler.compile(
                "{\"type\": \"object\", \"properties\": {\"a\": {}}, \"required\": [\"b\"]}"));
    }
}
