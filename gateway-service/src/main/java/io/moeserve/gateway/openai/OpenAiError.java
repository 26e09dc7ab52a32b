package io.moeserve.gateway.openai;

import com.fasterxml.jackson.core.JsonGenerator;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;

/**
 * The body of every error the gateway returns, in OpenAI's shape:
 * {@code {"error": {"message": ..., "type": ..., "param": ..., "code": ...}}}.
 *
 * @param message what went wrong, for a person
 * @param type    invalid_request_error, rate_limit_error or server_error
 * @param param   the request parameter at fault (e.g. {@code messages[0].content}), or null
 * @param code    a machine-readable code (e.g. context_length_exceeded, model_not_found), or null
 */
public record OpenAiError(String message, String type, String param, String code) {

    public static final String INVALID_REQUEST = "invalid_request_error";
    public static final String RATE_LIMIT = "rate_limit_error";
    public static final String SERVER_ERROR = "server_error";

    /** The error object alone, {@code {"message": ...}}, as the value of an "error" field. */
    void writeFields(JsonGenerator g) throws IOException {
        g.writeStartObject();
        g.writeStringField("message", message);
        g.writeStringField("type", type);
        g.writeStringField("param", param);
        g.writeStringField("code", code);
        g.writeEndObject();
    }

    /** {@code {"error": {...}}} as UTF-8 JSON. */
    public byte[] toJson() {
        ByteArrayOutputStream out = new ByteArrayOutputStream(160);
        try (JsonGenerator g = JsonOutput.FACTORY.createGenerator(out)) {
            g.writeStartObject();
            g.writeFieldName("error");
            writeFields(g);
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toByteArray();
    }
}
