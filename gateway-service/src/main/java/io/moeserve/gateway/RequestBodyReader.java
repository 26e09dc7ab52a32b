package io.moeserve.gateway;

import io.moeserve.gateway.openai.OpenAiError;
import io.quarkus.runtime.configuration.MemorySize;
import io.vertx.core.Future;
import io.vertx.core.Handler;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.core.http.HttpVersion;
import io.vertx.ext.web.RoutingContext;
import jakarta.inject.Inject;
import jakarta.inject.Singleton;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicLong;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/**
 * Reads /v1 request bodies up to quarkus.http.limits.max-body-size, answering a larger one with 413 in OpenAI's
 * error format. Quarkus' own limit (which stays in place behind this route) answers with an empty 413, and
 * only when Content-Length is declared; a chunked body is cut off later with a bare 413 from RESTEasy's input
 * stream. Reading here covers both and hands the body to RESTEasy through the routing context (the resources are
 * {@code @Blocking}, which read it from there).
 *
 * <p>A body whose Content-Type is not {@code application/json} (parameters such as {@code charset=utf-8} allowed)
 * is refused with 400 {@code unsupported_content_type}, as OpenAI's API does (openai/openai-openapi issues 194 and
 * 502 show its answer). It is read first, so that the connection stays usable. A body without a Content-Type is
 * taken as JSON.
 *
 * <p>A body is held in the heap while it is read, parsed, rendered and tokenized, and on the way it becomes several
 * times its size: the text, the rendered prompt, and the token ids as longs and then ints, up to one token a byte
 * (HfTokenizer reads only the ids; DJL's full encoding, 100 bytes a token, let one 4 MiB body take 300 MiB). So bodies
 * over {@value #SMALL} bytes draw their size from a budget, {@code moe.gateway.body-memory} (default a sixty-fourth of
 * the heap), reserved as the body arrives (all of it at once when Content-Length says how much) and given back when
 * the response ends. A body that does not fit is refused with 429 in OpenAI's format and a Retry-After, as a
 * saturated router is, and OpenAI's SDKs retry it. One body alone is always let in, so the heap must hold one body at
 * the cap (LargeBodyBurstIT: 4 MiB bodies in a 256 MiB heap). Smaller bodies (a chat turn is a few KiB) are never
 * refused for memory: their total is bounded by the connections.
 *
 * <p>HTTP/2: RESTEasy pauses the request when it takes it over, and Vert.x refuses to pause an HTTP/2 request whose
 * stream has ended ("Request has already been read"; HTTP/1.1 lets it), which gave h2c clients a 500. So an HTTP/2
 * body is handed over as its last byte arrives, before the stream's end is delivered: the request is paused first,
 * which holds the end in Vert.x's inbound buffer, and RESTEasy then reads the body from the routing context as
 * always. The last byte is known by Content-Length, which HTTP/2 clients send for a body of known size; a body
 * without one is refused with 411 in OpenAI's format, since its end cannot be seen before it is delivered.
 */
@Singleton
public class RequestBodyReader implements Handler<RoutingContext> {
    /** How much of an over-long body is read and dropped so that the client gets to read the 413. */
    private static final long DISCARD_LIMIT = 64L << 20;
    private static final long DISCARD_MILLIS = 10_000;
    /** Bodies up to this size are not counted against the body budget. */
    static final long SMALL = 64 << 10;

    private final long limit;
    private final long budget;
    private final AtomicLong held = new AtomicLong();
    private final Vertx vertx;

    @Inject
    RequestBodyReader(@ConfigProperty(name = "quarkus.http.limits.max-body-size") Optional<MemorySize> maxBodySize,
                      @ConfigProperty(name = "moe.gateway.body-memory") Optional<MemorySize> bodyMemory, Vertx vertx) {
        this.limit = maxBodySize.map(MemorySize::asLongValue).orElse(Long.MAX_VALUE);
        this.budget = bodyMemory.map(MemorySize::asLongValue).orElse(Runtime.getRuntime().maxMemory() / 64);
        this.vertx = vertx;
    }

    /**
     * Takes {@code bytes} more from the body budget for a request that holds {@code mine} already, if they fit; a
     * body within the cap always fits when no other request holds any.
     */
    boolean reserve(long bytes, long mine) {
        while (true) {
            long now = held.get();
            if (now > mine && now + bytes > budget) return false;
            if (held.compareAndSet(now, now + bytes)) return true;
        }
    }

    void release(long bytes) {
        held.addAndGet(-bytes);
    }

    /** Bytes of bodies now held against the budget. */
    long held() {
        return held.get();
    }

    @Override
    public void handle(RoutingContext ctx) {
        HttpServerRequest request = ctx.request();
        HttpMethod method = request.method();
        if (!(method == HttpMethod.POST || method == HttpMethod.PUT || method == HttpMethod.PATCH)) {
            ctx.next();
            return;
        }
        long declared = -1;
        String length = request.getHeader("Content-Length");
        if (length != null) {
            try {
                declared = Long.parseLong(length.trim());
            } catch (NumberFormatException e) {
                declared = -1;
            }
        }
        if (declared > limit) {
            tooLarge(ctx, declared);
            return;
        }
        // what this request holds against the budget, given back once when the response ends or the connection goes
        long[] reserved = {0};
        ctx.addEndHandler(v -> release(reserved[0]));
        if (declared > SMALL) {
            if (!reserve(declared, 0)) {
                busy(ctx, declared);
                return;
            }
            reserved[0] = declared;
        }
        boolean http2 = request.version() == HttpVersion.HTTP_2;
        if (http2 && declared < 0) {
            refuse(ctx, 411, new OpenAiError("An HTTP/2 request body needs a Content-Length header on this server.",
                    OpenAiError.INVALID_REQUEST, null, "length_required"), declared);
            return;
        }
        Buffer body = Buffer.buffer((int) Math.max(64, Math.min(declared, limit)));
        boolean[] rejected = {false};
        long expected = declared;
        if (http2 && declared == 0) {
            handOver(ctx, body);
            return;
        }
        request.handler(chunk -> {
            if (rejected[0]) return;
            long size = (long) body.length() + chunk.length();
            if (size > limit) {
                rejected[0] = true;
                tooLarge(ctx, -1);
                return;
            }
            if (size > SMALL && size > reserved[0]) {
                if (!reserve(size - reserved[0], reserved[0])) {
                    rejected[0] = true;
                    busy(ctx, -1);
                    return;
                }
                reserved[0] = size;
            }
            body.appendBuffer(chunk);
            if (http2 && body.length() == expected) handOver(ctx, body);
        });
        request.endHandler(v -> {
            if (rejected[0]) return;
            if (http2) {
                // Fewer bytes than Content-Length said (more were refused above): Vert.x resets such a stream.
                return;
            }
            handOver(ctx, body);
        });
        String expect = request.getHeader("Expect");
        if (expect != null && expect.equalsIgnoreCase("100-continue")) ctx.response().writeContinue();
    }

    /** The whole body is read: checks its type and passes it on in the routing context. */
    private static void handOver(RoutingContext ctx, Buffer body) {
        HttpServerRequest request = ctx.request();
        if (request.version() == HttpVersion.HTTP_2) {
            // Before the stream's end is delivered (see the class comment): paused, it waits in Vert.x's buffer.
            request.pause();
            request.handler(null);
            request.endHandler(null);
        }
        String type = request.getHeader("Content-Type");
        if (type != null && !isJson(type)) {
            String message = "Unsupported content type: '" + type + "'. This endpoint accepts only 'application/json'"
                    + " request bodies; send the header 'Content-Type: application/json'.";
            ctx.response().setStatusCode(400).putHeader("Content-Type", "application/json").end(Buffer.buffer(
                    new OpenAiError(message, OpenAiError.INVALID_REQUEST, null, "unsupported_content_type").toJson()));
            return;
        }
        ctx.setBody(body);
        ctx.next();
    }

    /** Whether a Content-Type header names JSON: {@code application/json}, in any case, with any parameters. */
    static boolean isJson(String contentType) {
        int semicolon = contentType.indexOf(';');
        String media = (semicolon < 0 ? contentType : contentType.substring(0, semicolon)).strip();
        return media.equalsIgnoreCase("application/json");
    }

    private void tooLarge(RoutingContext ctx, long declared) {
        String message = "Request body too large: this server accepts at most " + limit + " bytes"
                + (declared > 0 ? ", and the request declares " + declared + "." : ".");
        refuse(ctx, 413, new OpenAiError(message, OpenAiError.INVALID_REQUEST, null, "request_too_large"), declared);
    }

    private void busy(RoutingContext ctx, long declared) {
        String message = "The server is holding as many large request bodies as its memory allows (" + budget
                + " bytes); retry later.";
        ctx.response().putHeader("Retry-After", "1");
        refuse(ctx, 429, new OpenAiError(message, OpenAiError.RATE_LIMIT, null, "rate_limit_exceeded"), declared);
    }

    /** Answers with an error and closes the connection once the client has sent its body (up to a limit). */
    private void refuse(RoutingContext ctx, int status, OpenAiError error, long declared) {
        HttpServerRequest request = ctx.request();
        HttpServerResponse response = ctx.response();
        byte[] json = error.toJson();
        boolean http1 = request.version() != HttpVersion.HTTP_2;
        response.setStatusCode(status).putHeader("Content-Type", "application/json");
        if (http1) response.putHeader("Connection", "close");
        Future<Void> written = response.end(Buffer.buffer(json));
        if (!http1) return;
        // Close the connection only once the client has sent what it is sending (up to a limit), so that it
        // reads the 413 instead of a reset.
        if (request.isEnded() || declared > DISCARD_LIMIT) {
            written.onComplete(ar -> request.connection().close());
            return;
        }
        long[] dropped = {0};
        request.handler(chunk -> {
            dropped[0] += chunk.length();
            if (dropped[0] > DISCARD_LIMIT) request.connection().close();
        });
        request.endHandler(v -> written.onComplete(ar -> request.connection().close()));
        vertx.setTimer(DISCARD_MILLIS, t -> request.connection().close());
    }
}
