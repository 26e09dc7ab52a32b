package io.moeserve.gateway;

import static io.moeserve.gateway.BadRequestsTest.assertError;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

/** /v1/models, API keys, health and metrics. */
@QuarkusTest
@WithTestResource(FakeRouterResource.class)
class ModelsAndKeysTest {

    @Test
    void modelsListsTheServedModelWithTheRoutersCreatedTime() {
        HttpResponse<byte[]> r = Http.get("/v1/models", FakeRouterResource.API_KEY);
        assertEquals(200, r.statusCode(), Http.text(r));
        JsonNode body = Http.json(r);
        assertEquals("list", body.get("object").asText());
        assertEquals(1, body.get("data").size());
        JsonNode m = body.at("/data/0");
        assertEquals("tiny-moe", m.get("id").asText());
        assertEquals("model", m.get("object").asText());
        assertEquals(FakeRouter.CREATED, m.get("created").asLong());
        assertEquals("moe-serve", m.get("owned_by").asText());
        assertEquals(FakeRouter.MAX_CONTEXT, m.get("max_model_len").asInt());

        assertEquals(m, Http.json(Http.get("/v1/models/tiny-moe", FakeRouterResource.API_KEY)));
        assertError(Http.get("/v1/models/other", FakeRouterResource.API_KEY), 404, "model", "model_not_found");
        assertError(Http.get("/v1/models/org/other", FakeRouterResource.API_KEY), 404, "model", "model_not_found");
    }

    @Test
    void apiKeysAreRequiredOnV1() {
        byte[] body = "{\"model\":\"tiny-moe\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}".getBytes(StandardCharsets.UTF_8);
        HttpResponse<byte[]> none = Http.post("/v1/chat/completions", body, null);
        assertError(none, 401, null, "invalid_api_key");
        assertEquals("Bearer", none.headers().firstValue("WWW-Authenticate").orElse(""));
        assertError(Http.post("/v1/chat/completions", body, "sk-wrong"), 401, null, "invalid_api_key");
        assertError(Http.get("/v1/models", null), 401, null, "invalid_api_key");
        // Refused before the body is read, however large it is.
        assertError(Http.post("/v1/completions", new byte[5 << 20], null), 401, null, "invalid_api_key");
        assertEquals(200, Http.post("/v1/chat/completions", body, FakeRouterResource.OTHER_API_KEY).statusCode());
    }

    @Test
    void healthAndMetricsNeedNoKey() {
        HttpResponse<byte[]> ready = Http.get("/q/health/ready", null);
        assertEquals(200, ready.statusCode(), Http.text(ready));
        assertTrue(Http.text(ready).contains("\"router\""), Http.text(ready));
        assertEquals(200, Http.get("/q/health/live", null).statusCode());
        Http.post("/v1/chat/completions", "{\"model\":\"tiny-moe\",\"messages\":[{\"role\":\"user\",\"content\":\"m\"}]}");
        HttpResponse<byte[]> metrics = Http.get("/q/metrics", null);
        assertEquals(200, metrics.statusCode());
        String text = Http.text(metrics);
        assertTrue(text.contains("moe_gateway_generations_total"), text);
        assertTrue(text.contains("moe_gateway_completion_tokens_total"), text);
        assertTrue(text.contains("moe_gateway_time_to_first_token_seconds"), text);
        assertTrue(text.contains("moe_gateway_active_generations"), text);
    }
}
