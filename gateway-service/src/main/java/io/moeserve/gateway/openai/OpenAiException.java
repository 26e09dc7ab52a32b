package io.moeserve.gateway.openai;

import java.util.OptionalLong;

/** A failure to report to the client as an {@link OpenAiError} with an HTTP status. */
public final class OpenAiException extends RuntimeException {
    private final int status;
    private final OpenAiError error;
    private final OptionalLong retryAfterSeconds;

    public OpenAiException(int status, OpenAiError error, OptionalLong retryAfterSeconds, Throwable cause) {
        // No stack trace: these are expected outcomes (bad input, a busy router), thrown once per request.
        super(error.message(), cause, false, false);
        this.status = status;
        this.error = error;
        this.retryAfterSeconds = retryAfterSeconds;
    }

    public OpenAiException(int status, OpenAiError error) {
        this(status, error, OptionalLong.empty(), null);
    }

    /** 400 invalid_request_error naming the parameter at fault. */
    public static OpenAiException invalid(String param, String message) {
        return new OpenAiException(400, new OpenAiError(message, OpenAiError.INVALID_REQUEST, param, null));
    }

    /** 400 with a code, e.g. context_length_exceeded. */
    public static OpenAiException invalid(String param, String code, String message) {
        return new OpenAiException(400, new OpenAiError(message, OpenAiError.INVALID_REQUEST, param, code));
    }

    public static OpenAiException modelNotFound(String model) {
        return new OpenAiException(404, new OpenAiError("The model `" + model
                + "` does not exist or you do not have access to it.", OpenAiError.INVALID_REQUEST, "model",
                "model_not_found"));
    }

    public static OpenAiException server(int status, String code, String message) {
        return new OpenAiException(status, new OpenAiError(message, OpenAiError.SERVER_ERROR, null, code));
    }

    public int status() {
        return status;
    }

    public OpenAiError error() {
        return error;
    }

    /** Seconds for a Retry-After header (429 from a saturated router). */
    public OptionalLong retryAfterSeconds() {
        return retryAfterSeconds;
    }
}
