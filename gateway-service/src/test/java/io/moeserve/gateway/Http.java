package io.moeserve.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.restassured.RestAssured;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/** Plain HTTP against the gateway under test (the port Quarkus chose, in @QuarkusTest and in the *IT runs). */
final class Http {
    static final ObjectMapper JSON = new ObjectMapper();
    private static final HttpClient CLIENT = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();

    private Http() {}

    static int port() {
        return RestAssured.port;
    }

    static URI uri(String path) {
        return URI.create("http://localhost:" + port() + path);
    }

    static HttpResponse<byte[]> post(String path, String body) {
        return post(path, body.getBytes(StandardCharsets.UTF_8), FakeRouterResource.API_KEY);
    }

    static HttpResponse<byte[]> post(String path, byte[] body, String apiKey) {
        return post(path, body, apiKey, "application/json");
    }

    /** A POST with this Content-Type header, or none when it is null. */
    static HttpResponse<byte[]> post(String path, byte[] body, String apiKey, String contentType) {
        HttpRequest.Builder r = HttpRequest.newBuilder(uri(path)).timeout(Duration.ofSeconds(30))
                .POST(HttpRequest.BodyPublishers.ofByteArray(body));
        if (contentType != null) r.header("Content-Type", contentType);
        if (apiKey != null) r.header("Authorization", "Bearer " + apiKey);
        try {
            return CLIENT.send(r.build(), HttpResponse.BodyHandlers.ofByteArray());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    static HttpResponse<byte[]> get(String path, String apiKey) {
        HttpRequest.Builder r = HttpRequest.newBuilder(uri(path)).timeout(Duration.ofSeconds(30)).GET();
        if (apiKey != null) r.header("Authorization", "Bearer " + apiKey);
        try {
            return CLIENT.send(r.build(), HttpResponse.BodyHandlers.ofByteArray());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    static String text(HttpResponse<byte[]> r) {
        return new String(r.body(), StandardCharsets.UTF_8);
    }

    static JsonNode json(HttpResponse<byte[]> r) {
        try {
            return JSON.readTree(r.body());
        } catch (IOException e) {
            throw new AssertionError("not JSON (" + r.statusCode() + "): " + text(r), e);
        }
    }

    static JsonNode json(String s) {
        try {
            return JSON.readTree(s);
        } catch (IOException e) {
            throw new AssertionError("not JSON: " + s, e);
        }
    }

    /**
     * Splits an SSE body into its data payloads, asserting the framing is exactly {@code data: <payload>\n\n}
     * with nothing else (no other fields, no comments) and that it ends with {@code data: [DONE]\n\n}.
     */
    static List<String> sseData(HttpResponse<byte[]> r) {
        assertEquals(200, r.statusCode(), () -> text(r));
        assertEquals("text/event-stream", r.headers().firstValue("Content-Type").orElse(""));
        return sseData(text(r));
    }

    static List<String> sseData(String body) {
        assertTrue(body.endsWith("data: [DONE]\n\n"), () -> "no final [DONE]: " + body);
        List<String> out = new ArrayList<>();
        int i = 0;
        while (i < body.length()) {
            assertTrue(body.startsWith("data: ", i), () -> "event without 'data: ' at " + body);
            int end = body.indexOf("\n\n", i);
            assertTrue(end > 0, "unterminated event");
            String payload = body.substring(i + 6, end);
            assertTrue(!payload.contains("\n"), "multi-line event: " + payload);
            out.add(payload);
            i = end + 2;
        }
        out.removeLast();
        return out;
    }

    /**
     * A raw HTTP/1.1 exchange over a socket, for what HTTP clients hide: it sends the request, reads the response
     * until {@code until} appears (or the stream ends, or the timeout passes), then closes the socket: a client
     * going away mid-stream.
     */
    static String rawUntil(String path, String body, String until, Duration timeout) {
        try (Socket s = new Socket("localhost", port())) {
            s.setSoTimeout((int) timeout.toMillis());
            byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
            OutputStream out = s.getOutputStream();
            out.write(("POST " + path + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                    + "Authorization: Bearer " + FakeRouterResource.API_KEY + "\r\nContent-Length: " + bytes.length
                    + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
            out.write(bytes);
            out.flush();
            InputStream in = s.getInputStream();
            StringBuilder seen = new StringBuilder();
            byte[] buf = new byte[4096];
            try {
                while (!seen.toString().contains(until)) {
                    int n = in.read(buf);
                    if (n < 0) break;
                    seen.append(new String(buf, 0, n, StandardCharsets.UTF_8));
                }
            } catch (java.net.SocketTimeoutException e) {
                // gave up waiting: the caller wanted to leave early
            }
            return seen.toString();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Collects the text of a chat stream's content deltas (or a completion stream's text) for one choice. */
    static String streamedText(List<String> events, int index) {
        StringBuilder text = new StringBuilder();
        for (String e : events) {
            JsonNode chunk = json(e);
            for (JsonNode choice : chunk.path("choices")) {
                if (choice.path("index").asInt() != index) continue;
                JsonNode t = choice.has("delta") ? choice.path("delta").path("content") : choice.path("text");
                if (t.isTextual()) text.append(t.asText());
            }
        }
        return text.toString();
    }
}
