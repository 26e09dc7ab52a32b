package io.moeserve.gateway.openai;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.core.exc.StreamConstraintsException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.ObjectReader;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;

/**
 * Reads a request body as a JSON object, refusing invalid UTF-8 and malformed JSON with 400s that say where.
 *
 * <p>Hostile bodies meet explicit limits rather than the parser's defaults: at most {@link #MAX_NESTING_DEPTH}
 * nested arrays and objects (an OpenAI request nests a few levels; a tool's JSON schema a few more) and numbers of at
 * most {@link #MAX_NUMBER_LENGTH} characters. A key that appears twice in one object is refused: readers that
 * take the first and readers that take the last would see different requests (a proxy that checks {@code model}
 * and this gateway, say), and no client library writes one.
 */
final class JsonBody {
    static final int MAX_NESTING_DEPTH = 1000;
    static final int MAX_NUMBER_LENGTH = 1000;
    private static final ObjectReader READER = new ObjectMapper(JsonFactory.builder()
            .streamReadConstraints(StreamReadConstraints.builder()
                    .maxNestingDepth(MAX_NESTING_DEPTH).maxNumberLength(MAX_NUMBER_LENGTH).build())
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .build())
            .reader().with(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private JsonBody() {}

    static ObjectNode parse(byte[] body) {
        if (body == null || body.length == 0) {
            throw OpenAiException.invalid(null, "The request body is empty; this endpoint expects a JSON object.");
        }
        int bad = firstInvalidUtf8(body);
        if (bad >= 0) {
            throw OpenAiException.invalid(null, "The request body is not valid UTF-8 (first invalid byte at offset "
                    + bad + ").");
        }
        JsonNode root;
        try {
            root = READER.readTree(body);
        } catch (StreamConstraintsException e) {
            // Thrown where a limit is crossed, usually without a location.
            throw OpenAiException.invalid(null, "The JSON body of your request is beyond this server's limits (at most "
                    + MAX_NESTING_DEPTH + " nested arrays and objects, numbers of at most " + MAX_NUMBER_LENGTH
                    + " characters): " + e.getOriginalMessage() + where(e.getLocation()) + ".");
        } catch (JsonProcessingException e) {
            throw OpenAiException.invalid(null, "We could not parse the JSON body of your request: "
                    + e.getOriginalMessage() + where(e.getLocation()) + ".");
        } catch (IOException e) {
            throw OpenAiException.invalid(null, "We could not read the JSON body of your request: " + e.getMessage());
        }
        if (!(root instanceof ObjectNode object)) {
            throw OpenAiException.invalid(null, "The request body must be a JSON object, got "
                    + JsonFields.typeName(root) + ".");
        }
        return object;
    }

    private static String where(JsonLocation at) {
        return at == null || at.getLineNr() < 0 ? "" : " (line " + at.getLineNr() + ", column " + at.getColumnNr() + ")";
    }

    /**
     * The offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlong forms, no
     * surrogates, nothing above U+10FFFF), or -1. Jackson would also notice, but only inside strings it reads and
     * with a message about "middle bytes"; checking first gives one clear answer.
     */
    static int firstInvalidUtf8(byte[] b) {
        int i = 0;
        int n = b.length;
        while (i < n) {
            int c = b[i];
            if (c >= 0) {
                i++;
                continue;
            }
            c &= 0xFF;
            int len;
            int min;
            if (c >= 0xC2 && c <= 0xDF) {
                len = 2;
                min = 0x80;
            } else if (c >= 0xE0 && c <= 0xEF) {
                len = 3;
                min = 0x800;
            } else if (c >= 0xF0 && c <= 0xF4) {
                len = 4;
                min = 0x10000;
            } else {
                return i;
            }
            if (i + len > n) return i;
            int cp = c & (0xFF >> (len + 1));
            for (int k = 1; k < len; k++) {
                int cc = b[i + k] & 0xFF;
                if ((cc & 0xC0) != 0x80) return i;
                cp = (cp << 6) | (cc & 0x3F);
            }
            if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
            i += len;
        }
        return -1;
    }
}
