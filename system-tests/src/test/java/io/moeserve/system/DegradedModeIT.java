package io.moeserve.system;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.moeserve.runtime.family.Architecture;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Degraded mode as a user meets it, real processes on loopback: two expert groups of one pod each, and two routers
 * over them, one with {@code moe.router.experts.degraded-mode=mask} and one with the default, each behind its own
 * gateway. Once the only pod of group "high" is killed, requests through the masking router still succeed, say so
 * in {@code X-Moe-Degraded}, and its counter holds exactly the pairs the header reported; requests through the
 * default router fail with 503 as before.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class DegradedModeIT {
    private static final Path MODEL = Models.small(Architecture.MIXTRAL);
    private static final String MODEL_ID = "mixtral";
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern MASKED_HIGH = Pattern.compile("(?m)^moe_router_expert_masked_pairs_total\\{group=\"high\"[^}]*} (\\S+)$");
    private static final String COMPLETION = "{\"model\":\"mixtral\",\"prompt\":\"The experts of group high are gone\","
            + "\"max_tokens\":8,\"temperature\":0";
    private Deployment d;
    private ServiceProcess failingRouter;
    private ServiceProcess gateway;
    private ServiceProcess failingGateway;

    @BeforeAll
    void start() {
        d = new Deployment(MODEL, MODEL_ID);
        d.startExpert("low", "*:0-3");
        d.startExpert("high", "*:4-7");
        d.startRouter(Map.of("moe.router.experts.degraded-mode", "mask"));
        failingRouter = d.startAnotherRouter("router-fail", Map.of());
        gateway = startGateway("gateway", d.router);
        failingGateway = startGateway("gateway-fail", failingRouter);
        d.awaitReady();
        failingRouter.awaitReady(Deployment.START);
        gateway.awaitReady(Deployment.START);
        failingGateway.awaitReady(Deployment.START);
    }

    private static ServiceProcess startGateway(String name, ServiceProcess router) {
        Map<String, String> g = new HashMap<>();
        g.put("moe.model.path", MODEL.toString());
        g.put("moe.model.id", MODEL_ID);
        g.put("quarkus.grpc.clients.router.host", "127.0.0.1");
        g.put("quarkus.grpc.clients.router.port", Integer.toString(router.grpcPort));
        return ServiceProcess.start(name, "gateway-service", g);
    }

    @AfterAll
    void stop() {
        if (gateway != null) gateway.close();
        if (failingGateway != null) failingGateway.close();
        if (failingRouter != null) failingRouter.close();
        if (d != null) d.close();
    }

    private static HttpResponse<String> complete(ServiceProcess gateway, String extra) throws IOException, InterruptedException {
        HttpRequest r = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + gateway.httpPort + "/v1/completions"))
                .timeout(Duration.ofSeconds(120)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(COMPLETION + extra + "}")).build();
        return HTTP.send(r, HttpResponse.BodyHandlers.ofString());
    }

    private double maskedHigh() {
        Matcher m = MASKED_HIGH.matcher(d.router.get("/q/metrics"));
        assertTrue(m.find(), "the masked-pairs counter of group high is exported");
        return Double.parseDouble(m.group(1));
    }

    private static long maskedExperts(HttpResponse<String> r) {
        String h = r.headers().firstValue("x-moe-degraded").orElseThrow(() -> new AssertionError("no X-Moe-Degraded header: "
                + r.headers().map()));
        assertTrue(h.startsWith("masked-experts="), h);
        return Long.parseLong(h.substring("masked-experts=".length()));
    }

    @Test
    @Order(1)
    void whileEveryGroupIsUpBothModesAnswerTheSameWithoutTheHeader() throws Exception {
        HttpResponse<String> masking = complete(gateway, "");
        HttpResponse<String> failing = complete(failingGateway, "");
        assertEquals(200, masking.statusCode(), masking.body());
        assertEquals(200, failing.statusCode(), failing.body());
        assertEquals(JSON.readTree(failing.body()).at("/choices/0/text").asText(), JSON.readTree(masking.body()).at("/choices/0/text").asText(),
                "mask mode changes nothing while every group answers");
        assertTrue(masking.headers().firstValue("x-moe-degraded").isEmpty(), "nothing masked, no header");
        assertEquals(0.0, maskedHigh());
    }

    @Test
    @Order(2)
    void withTheOnlyPodOfAGroupGoneMaskModeAnswersCountsAndSaysSo() throws Exception {
        d.experts.get("high").getFirst().kill();
        assertTrue(d.experts.get("high").getFirst().waitFor(Duration.ofSeconds(30)), "the pod is gone");

        HttpResponse<String> r = complete(gateway, "");
        assertEquals(200, r.statusCode(), r.body());
        JsonNode body = JSON.readTree(r.body());
        assertTrue(body.at("/usage/completion_tokens").asInt() > 0, r.body());
        long masked = maskedExperts(r);
        assertTrue(masked > 0, "pairs were masked");
        assertEquals(masked, maskedHigh(), 0.0, "the counter holds exactly the pairs the one request reported");

        HttpResponse<String> stream = complete(gateway, ",\"stream\":true");
        assertEquals(200, stream.statusCode(), stream.body());
        long atFirstChunk = maskedExperts(stream);
        Matcher end = Pattern.compile("\n\n: x-moe-degraded masked-experts=(\\d+)\n\ndata: \\[DONE]\n\n$").matcher(stream.body());
        assertTrue(end.find(), "a closing SSE comment with the whole count:\n" + stream.body());
        long whole = Long.parseLong(end.group(1));
        assertTrue(atFirstChunk > 0 && whole >= atFirstChunk, atFirstChunk + " at the first chunk, " + whole + " in all");
        assertEquals(masked + whole, maskedHigh(), 0.0, "the counter adds the stream's pairs");
        assertTrue(d.router.isAlive(), "the router stays up");
    }

    @Test
    @Order(3)
    void withTheDefaultModeTheSameRequestFailsWith503() throws Exception {
        HttpResponse<String> r = complete(failingGateway, "");
        assertEquals(503, r.statusCode(), r.body());
        assertTrue(r.body().contains("expert group high (*:4-7)"), r.body());
        assertTrue(r.headers().firstValue("x-moe-degraded").isEmpty());
        assertTrue(failingRouter.get("/q/metrics").contains("moe_router_expert_masked_pairs_total{group=\"high\"} 0.0"),
                "the default mode masks nothing");
    }
}
