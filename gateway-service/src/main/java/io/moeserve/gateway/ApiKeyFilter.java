package io.moeserve.gateway;

import io.moeserve.gateway.openai.OpenAiError;
import io.vertx.core.Handler;
import io.vertx.core.buffer.Buffer;
import io.vertx.ext.web.RoutingContext;
import jakarta.inject.Inject;
import jakarta.inject.Singleton;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.List;

/**
 * When moe.gateway.api-keys is set, requires {@code Authorization: Bearer <key>} on /v1/*, else 401
 * invalid_api_key. A Vert.x route ahead of the body reader, so that a caller without a key is refused before
 * its body is read.
 */
@Singleton
public class ApiKeyFilter implements Handler<RoutingContext> {
    private final byte[][] keys;

    @Inject
    ApiKeyFilter(GatewaySettings settings) {
        List<String> accepted = settings.apiKeys().orElse(List.of()).stream().map(String::trim)
                .filter(k -> !k.isEmpty()).toList();
        keys = new byte[accepted.size()][];
        for (int i = 0; i < keys.length; i++) keys[i] = accepted.get(i).getBytes(StandardCharsets.UTF_8);
    }

    @Override
    public void handle(RoutingContext ctx) {
        if (keys.length == 0) {
            ctx.next();
            return;
        }
        String header = ctx.request().getHeader("Authorization");
        if (header == null || !header.regionMatches(true, 0, "Bearer ", 0, 7) || header.substring(7).isBlank()) {
            reject(ctx, "You didn't provide an API key. You need to provide your API key in an Authorization "
                    + "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).");
            return;
        }
        byte[] given = header.substring(7).trim().getBytes(StandardCharsets.UTF_8);
        boolean ok = false;
        // Compare with every key, in time independent of where the bytes differ.
        for (byte[] key : keys) ok |= MessageDigest.isEqual(key, given);
        if (!ok) {
            reject(ctx, "Incorrect API key provided.");
            return;
        }
        ctx.next();
    }

    private static void reject(RoutingContext ctx, String message) {
        byte[] body = new OpenAiError(message, OpenAiError.INVALID_REQUEST, null, "invalid_api_key").toJson();
        ctx.response().setStatusCode(401)
                .putHeader("Content-Type", "application/json")
                .putHeader("WWW-Authenticate", "Bearer")
                .end(Buffer.buffer(body));
    }
}
