package io.moeserve.gateway.router;

import io.grpc.Metadata;
import io.grpc.Status;
import io.moeserve.gateway.openai.OpenAiError;
import io.moeserve.gateway.openai.OpenAiException;
import java.util.OptionalLong;

/** Maps the router's gRPC statuses to OpenAI errors and HTTP statuses (the contract in router.proto). */
public final class RouterErrors {
    static final Metadata.Key<String> RETRY_AFTER_MS = Metadata.Key.of("retry-after-ms", Metadata.ASCII_STRING_MARSHALLER);

    private RouterErrors() {}

    public static OpenAiException translate(Throwable t) {
        if (t instanceof OpenAiException e) return e;
        Status status = Status.fromThrowable(t);
        String description = status.getDescription();
        return switch (status.getCode()) {
            case INVALID_ARGUMENT -> OpenAiException.invalid(null, or(description, "The router rejected the request."));
            case OUT_OF_RANGE -> OpenAiException.invalid("messages", "context_length_exceeded",
                    or(description, "The prompt plus max_tokens exceed the model's context."));
            case NOT_FOUND -> new OpenAiException(404, new OpenAiError(or(description,
                    "The router does not serve this model."), OpenAiError.INVALID_REQUEST, "model", "model_not_found"));
            case RESOURCE_EXHAUSTED -> new OpenAiException(429, new OpenAiError(or(description,
                    "The server is saturated; retry later."), OpenAiError.RATE_LIMIT, null, "rate_limit_exceeded"),
                    OptionalLong.of(retryAfterSeconds(Status.trailersFromThrowable(t))), null);
            case UNAVAILABLE -> OpenAiException.server(503, "service_unavailable", "The model is unavailable right "
                    + "now" + (description == null ? "." : ": " + description));
            case DEADLINE_EXCEEDED -> OpenAiException.server(504, "timeout", "The generation did not finish in time"
                    + (description == null ? "." : ": " + description));
            default -> OpenAiException.server(500, null, "The router failed: " + status.getCode()
                    + (description == null ? "" : ": " + description));
        };
    }

    /** Whole seconds, rounded up, from the trailer "retry-after-ms"; 1 when it is missing or malformed. */
    static long retryAfterSeconds(Metadata trailers) {
        if (trailers == null) return 1;
        String ms = trailers.get(RETRY_AFTER_MS);
        if (ms == null) return 1;
        try {
            long millis = Long.parseLong(ms.trim());
            return Math.max(1, (millis + 999) / 1000);
        } catch (NumberFormatException e) {
            return 1;
        }
    }

    private static String or(String s, String otherwise) {
        return s == null || s.isBlank() ? otherwise : s;
    }
}
