package io.moeserve.gateway.openai;

import jakarta.ws.rs.NotAllowedException;
import jakarta.ws.rs.NotFoundException;
import jakarta.ws.rs.WebApplicationException;
import jakarta.ws.rs.core.HttpHeaders;
import jakarta.ws.rs.core.MediaType;
import jakarta.ws.rs.core.Response;
import jakarta.ws.rs.core.UriInfo;
import org.jboss.logging.Logger;
import org.jboss.resteasy.reactive.server.ServerExceptionMapper;

/** Turns every failure of a REST call into an OpenAI error object with the matching HTTP status. */
public class OpenAiExceptionMappers {
    private static final Logger LOG = Logger.getLogger(OpenAiExceptionMappers.class);

    @ServerExceptionMapper
    public Response openAi(OpenAiException e) {
        return response(e);
    }

    /** JAX-RS' own failures (no such method on a path, unacceptable media type...), in OpenAI's format. */
    @ServerExceptionMapper
    public Response webApplication(WebApplicationException e, UriInfo uri, jakarta.ws.rs.core.Request request) {
        int status = e.getResponse().getStatus();
        String where = request.getMethod() + " /" + uri.getPath().replaceFirst("^/", "");
        OpenAiError error = switch (e) {
            case NotFoundException ignored -> new OpenAiError("Invalid URL (" + where + ")",
                    OpenAiError.INVALID_REQUEST, null, "unknown_url");
            case NotAllowedException ignored -> new OpenAiError("Method not allowed (" + where + ")",
                    OpenAiError.INVALID_REQUEST, null, "method_not_allowed");
            default -> status >= 500
                    ? new OpenAiError("The server had an error while processing your request.",
                            OpenAiError.SERVER_ERROR, null, null)
                    : new OpenAiError(e.getMessage() == null ? "Invalid request (" + where + ")" : e.getMessage(),
                            OpenAiError.INVALID_REQUEST, null, null);
        };
        if (status >= 500) LOG.error("request failed: " + where, e);
        return response(new OpenAiException(status, error));
    }

    /** Anything else is a bug of ours: logged, and answered without internals. */
    @ServerExceptionMapper
    public Response unexpected(Throwable e, UriInfo uri) {
        LOG.error("unexpected failure in " + uri.getPath(), e);
        return response(OpenAiException.server(500, null,
                "The server had an error while processing your request."));
    }

    static Response response(OpenAiException e) {
        Response.ResponseBuilder r = Response.status(e.status())
                .type(MediaType.APPLICATION_JSON_TYPE)
                .entity(e.error().toJson());
        e.retryAfterSeconds().ifPresent(s -> r.header("Retry-After", Long.toString(s)));
        if (e.status() == 401) r.header(HttpHeaders.WWW_AUTHENTICATE, "Bearer");
        return r.build();
    }
}
