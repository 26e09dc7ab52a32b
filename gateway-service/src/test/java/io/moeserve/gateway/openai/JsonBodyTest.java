package io.moeserve.gateway.openai;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Random;
import org.junit.jupiter.api.Test;

class JsonBodyTest {

    @Test
    void validUtf8Passes() {
        assertEquals(-1, JsonBody.firstInvalidUtf8("plain, Grüße, 你好, 😀".getBytes(StandardCharsets.UTF_8)));
    }

    @Test
    void malformedUtf8IsFoundAtItsFirstByte() {
        assertEquals(2, JsonBody.firstInvalidUtf8(new byte[] {'a', 'b', (byte) 0xFF}));
        assertEquals(1, JsonBody.firstInvalidUtf8(new byte[] {'a', (byte) 0xC0, (byte) 0x80}), "overlong");
        assertEquals(0, JsonBody.firstInvalidUtf8(new byte[] {(byte) 0xED, (byte) 0xA0, (byte) 0x80}), "surrogate");
        assertEquals(0, JsonBody.firstInvalidUtf8(new byte[] {(byte) 0xF4, (byte) 0x90, (byte) 0x80, (byte) 0x80}), "> U+10FFFF");
        assertEquals(1, JsonBody.firstInvalidUtf8(new byte[] {'x', (byte) 0xE4, (byte) 0xBD}), "truncated");
        assertEquals(0, JsonBody.firstInvalidUtf8(new byte[] {(byte) 0x80}), "lone continuation");
    }

    /** Agrees with the JDK's strict decoder on random bytes. */
    @Test
    void agreesWithTheJdkDecoder() {
        Random random = new Random(7);
        for (int round = 0; round < 20000; round++) {
            byte[] b = new byte[random.nextInt(12)];
            for (int i = 0; i < b.length; i++) {
                int r = random.nextInt(4);
                b[i] = (byte) (r == 0 ? random.nextInt(128) : r == 1 ? 0x80 + random.nextInt(64) : 0xC0 + random.nextInt(64));
            }
            boolean jdkValid;
            try {
                StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(b));
                jdkValid = true;
            } catch (CharacterCodingException e) {
                jdkValid = false;
            }
            assertEquals(jdkValid, JsonBody.firstInvalidUtf8(b) < 0, () -> java.util.HexFormat.of().formatHex(b));
        }
    }

    @Test
    void malformedJsonIsA400NamingWhere() {
        OpenAiException e = assertThrows(OpenAiException.class,
                () -> JsonBody.parse("{\"model\": \"x\",".getBytes(StandardCharsets.UTF_8)));
        assertEquals(400, e.status());
        assertEquals("invalid_request_error", e.error().type());
        assertThrows(OpenAiException.class, () -> JsonBody.parse("{} {}".getBytes(StandardCharsets.UTF_8)),
                "trailing content");
        assertThrows(OpenAiException.class, () -> JsonBody.parse("[1]".getBytes(StandardCharsets.UTF_8)),
                "not an object");
    }

    /** Limits that Jackson reports without a location (which once made a 500 of them) are 400s too. */
    @Test
    void bodiesBeyondTheLimitsAre400s() {
        String deep = "{\"m\":" + "[".repeat(10_000) + "]".repeat(10_000) + "}";
        OpenAiException e = assertThrows(OpenAiException.class, () -> JsonBody.parse(deep.getBytes(StandardCharsets.UTF_8)));
        assertEquals(400, e.status());
        assertTrue(e.error().message().contains("nested"), e.error().message());
        String fits = "{\"m\":" + "[".repeat(JsonBody.MAX_NESTING_DEPTH - 1) + "]".repeat(JsonBody.MAX_NESTING_DEPTH - 1) + "}";
        assertEquals(1, JsonBody.parse(fits.getBytes(StandardCharsets.UTF_8)).size());
        String digits = "{\"n\":" + "7".repeat(JsonBody.MAX_NUMBER_LENGTH + 1) + "}";
        assertEquals(400, assertThrows(OpenAiException.class, () -> JsonBody.parse(digits.getBytes(StandardCharsets.UTF_8)))
                .status());
        assertTrue(JsonBody.parse(("{\"n\":" + "7".repeat(JsonBody.MAX_NUMBER_LENGTH) + "}").getBytes(StandardCharsets.UTF_8))
                .get("n").isBigInteger());
    }

    @Test
    void aRepeatedKeyIsRefusedAtAnyDepth() {
        for (String body : new String[] {"{\"a\":1,\"a\":1}", "{\"a\":[{\"b\":1,\"c\":2,\"b\":3}]}"}) {
            OpenAiException e = assertThrows(OpenAiException.class, () -> JsonBody.parse(body.getBytes(StandardCharsets.UTF_8)));
            assertTrue(e.error().message().contains("Duplicate field"), e.error().message());
        }
        assertEquals(2, JsonBody.parse("{\"a\":{\"b\":1},\"b\":{\"a\":1}}".getBytes(StandardCharsets.UTF_8)).size());
    }
}
