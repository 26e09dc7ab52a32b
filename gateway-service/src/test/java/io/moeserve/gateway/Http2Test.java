package io.moeserve.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.vertx.core.Vertx;
import io.vertx.core.buffer.Buffer;
import io.vertx.core.http.HttpClientOptions;
import io.vertx.core.http.HttpClientResponse;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.HttpVersion;
import io.vertx.core.http.RequestOptions;
import jakarta.inject.Inject;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * HTTP/2 in clear text (h2c) beside HTTP/1.1: java.net.http's upgrade (its first request asks for h2c, and the
 * connection is HTTP/2 from then on), a first request whose large body comes with the upgrade, SSE streaming over an
 * HTTP/2 stream, and prior knowledge (the client's first bytes are HTTP/2's preface) with Vert.x's client.
 */
@QuarkusTest
@WithTestResource(FakeRouterResource.class)
class Http2Test {
    private static final String CHAT = "{\"model\":\"tiny-moe\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]%s}";

    @Inject
    Vertx vertx;

    private static HttpClient h2() {
        return HttpClient.newBuilder().version(HttpClient.Version.HTTP_2).connectTimeout(Duration.ofSeconds(5)).build();
    }

    private static HttpRequest chat(String content, String extra) {
        return HttpRequest.newBuilder(Http.uri("/v1/chat/completions")).timeout(Duration.ofSeconds(30))
                .header("Content-Type", "application/json").header("Authorization", "Bearer " + FakeRouterResource.API_KEY)
                .POST(HttpRequest.BodyPublishers.ofString(String.format(CHAT, content, extra))).build();
    }

    private static String content(HttpResponse<String> r) throws Exception {
        JsonNode json = Http.JSON.readTree(r.body());
        return json.at("/choices/0/message/content").asText();
    }

    @Test
    void anUpgradedConnectionServesRequestsWithBodiesOverHttp2() throws Exception {
        HttpClient client = h2();
        HttpResponse<String> live = client.send(HttpRequest.newBuilder(Http.uri("/q/health/live")).build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, live.statusCode());
        HttpResponse<String> r = client.send(chat("hi FAKE{\\\"reply\\\":\\\"over h2c\\\"}", ""), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), r.body());
        assertEquals(HttpClient.Version.HTTP_2, r.version(), "the upgraded connection carries the POST");
        assertEquals("over h2c", content(r));
        HttpResponse<String> bad = client.send(HttpRequest.newBuilder(Http.uri("/v1/chat/completions"))
                .header("Content-Type", "application/json").header("Authorization", "Bearer " + FakeRouterResource.API_KEY)
                .POST(HttpRequest.BodyPublishers.ofString("{not json")).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(400, bad.statusCode(), bad.body());
        assertEquals(HttpClient.Version.HTTP_2, bad.version());
        // HTTP/1.1 clients are served as before.
        assertEquals(HttpClient.Version.HTTP_1_1, Http.post("/v1/chat/completions", String.format(CHAT, "hi", "")).version());
    }

    @Test
    void aLargeBodyIsReadWithTheUpgradeOfferAndOnTheHttp2Connection() throws Exception {
        // 900 KiB in a field the gateway ignores (FakeRouterResource sets max-body-size to 1M): the body is large, the
        // prompt is not. A new client's first request offers the upgrade with its body; once a bodiless request has
        // upgraded, the body goes in DATA frames.
        String big = ",\"user\":\"" + "u".repeat(900 << 10) + "\"";
        HttpClient client = h2();
        HttpResponse<String> first = client.send(chat("big FAKE{\\\"reply\\\":\\\"read first\\\"}", big), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, first.statusCode(), first.body());
        assertEquals("read first", content(first));
        HttpClient upgraded = h2();
        upgraded.send(HttpRequest.newBuilder(Http.uri("/q/health/live")).build(), HttpResponse.BodyHandlers.discarding());
        HttpResponse<String> r = upgraded.send(chat("big FAKE{\\\"reply\\\":\\\"read in frames\\\"}", big), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), r.body());
        assertEquals(HttpClient.Version.HTTP_2, r.version());
        assertEquals("read in frames", content(r));
        HttpResponse<String> tooLarge = upgraded.send(chat("x", ",\"user\":\"" + "u".repeat(2 << 20) + "\""), HttpResponse.BodyHandlers.ofString());
        assertEquals(413, tooLarge.statusCode(), "over quarkus.http.limits.max-body-size: " + tooLarge.body());
        assertTrue(tooLarge.body().contains("request_too_large"), tooLarge.body());
        HttpResponse<String> after = upgraded.send(chat("FAKE{\\\"reply\\\":\\\"still here\\\"}", ""), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, after.statusCode(), after.body());
        assertEquals("still here", content(after), "a refused stream leaves the connection's other streams working");
    }

    @Test
    void anHttp2BodyOfUnknownLengthIsRefusedWith411() throws Exception {
        // Its end cannot be seen before Vert.x delivers it, and RESTEasy cannot take over an ended HTTP/2 request.
        HttpClient client = h2();
        client.send(HttpRequest.newBuilder(Http.uri("/q/health/live")).build(), HttpResponse.BodyHandlers.discarding());
        byte[] body = String.format(CHAT, "hi", "").getBytes(java.nio.charset.StandardCharsets.UTF_8);
        HttpResponse<String> r = client.send(HttpRequest.newBuilder(Http.uri("/v1/chat/completions"))
                .header("Content-Type", "application/json").header("Authorization", "Bearer " + FakeRouterResource.API_KEY)
                .POST(HttpRequest.BodyPublishers.ofInputStream(() -> new java.io.ByteArrayInputStream(body))).build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(HttpClient.Version.HTTP_2, r.version());
        assertEquals(411, r.statusCode(), r.body());
        assertTrue(r.body().contains("length_required"), r.body());
        HttpResponse<String> after = client.send(chat("FAKE{\\\"reply\\\":\\\"next\\\"}", ""), HttpResponse.BodyHandlers.ofString());
        assertEquals("next", content(after), "the connection serves on");
    }

    @Test
    void serverSentEventsStreamOverHttp2() throws Exception {
        HttpClient client = h2();
        client.send(HttpRequest.newBuilder(Http.uri("/q/health/live")).build(), HttpResponse.BodyHandlers.discarding());
        HttpResponse<java.util.stream.Stream<String>> r = client.send(
                chat("FAKE{\\\"reply\\\":\\\"streamed over h2c\\\",\\\"tokenize\\\":\\\"bytes\\\",\\\"per_message\\\":3,\\\"delay_ms\\\":5}",
                        ",\"stream\":true"), HttpResponse.BodyHandlers.ofLines());
        assertEquals(200, r.statusCode());
        assertEquals(HttpClient.Version.HTTP_2, r.version());
        assertEquals("text/event-stream", r.headers().firstValue("Content-Type").orElse(""));
        List<String> events = r.body().filter(line -> line.startsWith("data: ")).map(line -> line.substring(6)).toList();
        assertEquals("[DONE]", events.getLast());
        StringBuilder text = new StringBuilder();
        for (String e : events.subList(0, events.size() - 1)) {
            text.append(Http.JSON.readTree(e).at("/choices/0/delta/content").asText(""));
        }
        assertEquals("streamed over h2c", text.toString());
        assertTrue(events.size() > 4, "several chunks: " + events);
    }

    @Test
    void priorKnowledgeClientsSpeakHttp2FromTheFirstByte() throws Exception {
        io.vertx.core.http.HttpClient client = vertx.createHttpClient(new HttpClientOptions()
                .setProtocolVersion(HttpVersion.HTTP_2).setHttp2ClearTextUpgrade(false));
        try {
            RequestOptions options = new RequestOptions().setMethod(HttpMethod.POST).setHost("localhost").setPort(Http.port())
                    .setURI("/v1/chat/completions").putHeader("Content-Type", "application/json")
                    .putHeader("Authorization", "Bearer " + FakeRouterResource.API_KEY);
            String body = String.format(CHAT, "FAKE{\\\"reply\\\":\\\"prior knowledge\\\"}", "");
            HttpClientResponse[] response = new HttpClientResponse[1];
            Buffer answer = client.request(options)
                    .compose(request -> request.send(Buffer.buffer(body)))
                    .compose(res -> {
                        response[0] = res;
                        return res.body();
                    }).toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS);
            assertEquals(HttpVersion.HTTP_2, response[0].version());
            assertEquals(200, response[0].statusCode(), answer.toString());
            assertEquals("prior knowledge", Http.JSON.readTree(answer.getBytes()).at("/choices/0/message/content").asText());
        } finally {
            client.close();
        }
    }
}
