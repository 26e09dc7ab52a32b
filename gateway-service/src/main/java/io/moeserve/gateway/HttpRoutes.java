package io.moeserve.gateway;

import io.vertx.ext.web.Router;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;

/** Puts the API-key check and the body reader in front of the /v1 resources and /tokenize, /detokenize. */
@ApplicationScoped
public class HttpRoutes {
    /** Quarkus enforces max-body-size at order -2 (RouteConstants.ROUTE_ORDER_UPLOAD_LIMIT); these come first. */
    static final int API_KEY_ORDER = -5;
    static final int BODY_ORDER = -4;
    /** vLLM serves /tokenize and /detokenize beside /v1; they read the tokenizer, so they need a key as well. */
    private static final String[] PATHS = {"/v1/*", "/tokenize", "/detokenize"};

    @Inject
    ApiKeyFilter apiKeys;

    @Inject
    RequestBodyReader bodies;

    void register(@Observes Router http) {
        for (String path : PATHS) {
            http.route(path).order(API_KEY_ORDER).handler(apiKeys);
            http.route(path).order(BODY_ORDER).handler(bodies);
        }
    }
}
