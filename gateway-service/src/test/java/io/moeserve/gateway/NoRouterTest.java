package io.moeserve.gateway;

import static io.moeserve.gateway.BadRequestsTest.assertError;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.moeserve.cli.SyntheticModel;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.synthetic.SyntheticCheckpointGenerator;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** No API keys configured, and nothing listening where the router should be. */
@QuarkusTest
@TestProfile(NoRouterTest.Profile.class)
class NoRouterTest {

    public static class Profile implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            try {
                Path checkpoint = Files.createTempDirectory("moe-gateway-norouter").resolve("lonely-model");
                SyntheticModel.generate(checkpoint, SyntheticCheckpointGenerator.Spec.tiny(Architecture.OLMOE));
                int closedPort;
                try (ServerSocket s = new ServerSocket(0)) {
                    closedPort = s.getLocalPort();
                }
                return Map.of("moe.model.path", checkpoint.toString(),
                        "quarkus.grpc.clients.router.host", "127.0.0.1",
                        "quarkus.grpc.clients.router.port", Integer.toString(closedPort),
                        "quarkus.grpc.clients.router.test-port", Integer.toString(closedPort),
                        "moe.gateway.describe-timeout", "2s");
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    @Test
    void withoutKeysNoAuthorizationIsNeededAndModelsStillAnswers() {
        HttpResponse<byte[]> r = Http.get("/v1/models", null);
        assertEquals(200, r.statusCode(), Http.text(r));
        JsonNode m = Http.json(r).at("/data/0");
        assertEquals("lonely-model", m.get("id").asText(), "the id defaults to the checkpoint directory's name");
        assertTrue(Math.abs(m.get("created").asLong() - System.currentTimeMillis() / 1000) < 3600,
                "created from the checkpoint's files while the router is away");
    }

    @Test
    void generationIs503WhileTheRouterIsUnreachable() {
        String body = "{\"model\":\"lonely-model\",\"messages\":[{\"role\":\"user\",\"content\":\"anyone?\"}]}";
        assertError(Http.post("/v1/chat/completions", body.getBytes(), null), 503, null, "service_unavailable");
        assertError(Http.post("/v1/chat/completions", body.replace("}]}", "}],\"stream\":true}").getBytes(), null), 503,
                null, "service_unavailable");
    }

    @Test
    void notReadyWithoutTheRouter() {
        HttpResponse<byte[]> r = Http.get("/q/health/ready", null);
        assertEquals(503, r.statusCode(), Http.text(r));
        assertTrue(Http.text(r).contains("\"router\""));
        assertEquals(200, Http.get("/q/health/live", null).statusCode());
    }
}
