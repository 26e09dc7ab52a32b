package io.moeserve.system;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.http.StreamResponse;
import com.openai.errors.OpenAIException;
import com.openai.models.ResponseFormatJsonSchema;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionStreamOptions;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionCreateParams;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.tokenizer.HfTokenizer;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
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
 * The whole system as a user runs it: gateway → router → expert pods (two replicas of the low experts, one pod of
 * the high ones), as separate processes on loopback, driven by the official OpenAI Java SDK and by raw HTTP.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ChatApiIT {
    private static final Path MODEL = Models.small(Architecture.MIXTRAL);
    private static final String MODEL_ID = "mixtral";
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private Deployment d;
    private ServiceProcess gateway;
    private OpenAIClient client;

    @BeforeAll
    void start() {
        d = new Deployment(MODEL, MODEL_ID);
        d.startExpert("low", "*:0-3");
        d.startExpert("low", "*:0-3");
        d.startExpert("high", "*:4-7");
        d.startRouter(Map.of());
        Map<String, String> g = new HashMap<>();
        g.put("moe.model.path", MODEL.toString());
        g.put("moe.model.id", MODEL_ID);
        g.put("quarkus.grpc.clients.router.host", "127.0.0.1");
        g.put("quarkus.grpc.clients.router.port", Integer.toString(d.router.grpcPort));
        gateway = ServiceProcess.start("gateway", "gateway-service", g);
        d.awaitReady();
        gateway.awaitReady(Deployment.START);
        client = OpenAIOkHttpClient.builder().baseUrl("http://127.0.0.1:" + gateway.httpPort + "/v1").apiKey("unused")
                .maxRetries(0).timeout(Duration.ofSeconds(120)).responseValidation(true).build();
    }

    @AfterAll
    void stop() {
        if (gateway != null) gateway.close();
        if (d != null) d.close();
    }

    private static ChatCompletionCreateParams.Builder chat(String message, int maxTokens) {
        return ChatCompletionCreateParams.builder().model(MODEL_ID).addUserMessage(message).maxCompletionTokens(maxTokens)
                .temperature(0.0);
    }

    private String streamed(ChatCompletionCreateParams params) {
        StringBuilder text = new StringBuilder();
        try (StreamResponse<ChatCompletionChunk> s = client.chat().completions().createStreaming(params)) {
            s.stream().forEach(c -> c.choices().forEach(ch -> ch.delta().content().ifPresent(text::append)));
        }
        return text.toString();
    }

    @Test
    @Order(1)
    void greedyTextIsTheRuntimesInProcessOutput() throws IOException {
        int[] prompt = {11, 250, 3, 1999, 42, 7, 300, 12};
        int[] expected = Models.inProcess(MODEL, prompt, 20);
        List<Long> ids = java.util.Arrays.stream(prompt).mapToLong(i -> i).boxed().toList();
        Completion c = client.completions().create(CompletionCreateParams.builder().model(MODEL_ID)
                .prompt(CompletionCreateParams.Prompt.ofArrayOfTokens(ids)).maxTokens(20L).temperature(0.0)
                .putAdditionalBodyProperty("ignore_eos", com.openai.core.JsonValue.from(true)).build());
        try (HfTokenizer tok = HfTokenizer.load(MODEL)) {
            assertEquals(tok.decode(expected, true), c.choices().getFirst().text(),
                    "gateway → router → pods must generate what the runtime generates in one process");
        }
    }

    /**
     * Structured output through the whole system: a strict json_schema at temperature 1 on random weights, where
     * nothing but the mask makes the text JSON. Every choice that ends with "stop" parses and validates; one that
     * ran out of max_tokens ends with "length" (its JSON unclosed), which is why only most must complete.
     */
    @Test
    @Order(1)
    void aStrictJsonSchemaHoldsSampledOutputOfRandomWeights() throws IOException {
        Map<String, Object> properties = new java.util.LinkedHashMap<>();
        properties.put("name", Map.of("type", "string", "maxLength", 12));
        properties.put("age", Map.of("type", "integer"));
        properties.put("ok", Map.of("type", "boolean"));
        properties.put("tags", Map.of("type", "array", "maxItems", 3, "items", Map.of("enum", List.of("red", "green", 7))));
        Map<String, Object> schema = Map.of("type", "object", "additionalProperties", false,
                "required", List.of("name", "age", "ok", "tags"), "properties", properties);
        ResponseFormatJsonSchema.JsonSchema.Schema.Builder s = ResponseFormatJsonSchema.JsonSchema.Schema.builder();
        schema.forEach((k, v) -> s.putAdditionalProperty(k, com.openai.core.JsonValue.from(v)));
        ChatCompletion c = client.chat().completions().create(chat("Describe someone as JSON.", 300).temperature(1.0).n(6)
                .responseFormat(ResponseFormatJsonSchema.builder().jsonSchema(ResponseFormatJsonSchema.JsonSchema.builder()
                        .name("person").strict(true).schema(s.build()).build()).build()).build());
        var json = new com.fasterxml.jackson.databind.ObjectMapper();
        int complete = 0;
        for (ChatCompletion.Choice ch : c.choices()) {
            String text = ch.message().content().orElseThrow();
            if (ChatCompletion.Choice.FinishReason.LENGTH.equals(ch.finishReason())) continue;
            assertEquals(ChatCompletion.Choice.FinishReason.STOP, ch.finishReason());
            complete++;
            var v = json.readTree(text);
            List<String> names = new java.util.ArrayList<>();
            v.fieldNames().forEachRemaining(names::add);
            assertEquals(List.of("name", "age", "ok", "tags"), names, text);
            assertTrue(v.get("name").isTextual() && v.get("name").textValue().codePointCount(0, v.get("name").textValue().length()) <= 12, text);
            assertTrue(v.get("age").isIntegralNumber() && v.get("ok").isBoolean() && v.get("tags").size() <= 3, text);
            for (var t : v.get("tags")) assertTrue(List.of("\"red\"", "\"green\"", "7").contains(t.toString()), text);
        }
        assertTrue(complete >= 3, "only " + complete + " of 6 sampled choices closed their JSON within 300 tokens");
    }

    @Test
    @Order(2)
    void theOfficialClientChatsStreamingAndNotWithTheSameText() {
        ChatCompletionCreateParams p = chat("Tell me about experts.", 24).build();
        ChatCompletion whole = client.chat().completions().create(p);
        String text = whole.choices().getFirst().message().content().orElseThrow();
        assertTrue(!text.isEmpty());
        assertEquals(text, streamed(p), "streaming and not streaming return the same text");
        ChatCompletionCreateParams withUsage = chat("Tell me about experts.", 24)
                .streamOptions(ChatCompletionStreamOptions.builder().includeUsage(true).build()).build();
        try (StreamResponse<ChatCompletionChunk> s = client.chat().completions().createStreaming(withUsage)) {
            List<ChatCompletionChunk> chunks = s.stream().toList();
            assertEquals(whole.usage().orElseThrow().completionTokens(),
                    chunks.getLast().usage().orElseThrow().completionTokens());
        }
    }

    @Test
    @Order(3)
    void killingOneOfTwoReplicasMidStreamDoesNotBreakTheStream() {
        ChatCompletionCreateParams p = chat("A long answer, please.", 120)
                .putAdditionalBodyProperty("ignore_eos", com.openai.core.JsonValue.from(true)).build();
        String expected = client.chat().completions().create(p).choices().getFirst().message().content().orElseThrow();
        StringBuilder text = new StringBuilder();
        int[] chunks = {0};
        try (StreamResponse<ChatCompletionChunk> s = client.chat().completions().createStreaming(p)) {
            s.stream().forEach(c -> {
                c.choices().forEach(ch -> ch.delta().content().ifPresent(text::append));
                if (++chunks[0] == 10) d.experts.get("low").get(1).kill();
            });
        }
        assertEquals(expected, text.toString(), "the stream completed, unchanged, across the crash of a replica");
    }

    @Test
    @Order(4)
    void badInputGetsOpenAiErrorsAndTheServiceKeepsServing() throws Exception {
        // A long stream runs through all of this and must finish untouched.
        CompletableFuture<String> bystander = CompletableFuture.supplyAsync(
                () -> streamed(chat("Keep going.", 80).putAdditionalBodyProperty("ignore_eos", com.openai.core.JsonValue.from(true)).build()));
        assertError(post("{not json", "application/json"), 400, "invalid_request_error");
        assertError(post("{\"model\": \"mixtral\", \"messages\": \"hello\"}", "application/json"), 400, "messages");
        assertError(post("{\"model\": \"gpt-4\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", "application/json"), 404,
                "model_not_found");
        assertError(post("{\"model\": \"mixtral\", \"messages\": []}", "application/json"), 400, "messages");
        assertError(post("{\"model\": \"mixtral\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": -5}",
                "application/json"), 400, "max_tokens");
        assertError(post("{\"model\": \"mixtral\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 100000000}",
                "application/json"), 400, "context_length_exceeded");
        assertError(post("{\"model\": \"mixtral\", \"messages\": [{\"role\": \"user\", \"content\": \"" + "word ".repeat(2000) + "\"}]}",
                "application/json"), 400, "context_length_exceeded");
        java.io.ByteArrayOutputStream bad = new java.io.ByteArrayOutputStream();
        bad.writeBytes("{\"model\": \"mixtral\", \"messages\": [{\"role\": \"user\", \"content\": \"".getBytes(StandardCharsets.UTF_8));
        bad.writeBytes(new byte[] {(byte) 0xC3, (byte) 0x28}); // a lead byte without its continuation: not UTF-8
        bad.writeBytes("\"}]}".getBytes(StandardCharsets.UTF_8));
        assertError(post(bad.toByteArray(), "application/json"), 400, "invalid_request_error");
        assertError(post(new byte[10 * 1024 * 1024], "application/json"), 413, "request_too_large");
        disconnectMidStream();
        assertTrue(bystander.get(180, TimeUnit.SECONDS).length() > 0, "the other stream finished");
        assertTrue(gateway.isAlive() && d.router.isAlive());
        assertTrue(!client.chat().completions().create(chat("Still there?", 8).build()).choices().isEmpty());
    }

    /** A raw client that reads a few SSE bytes and hangs up: the router must drop the sequence and free its cache. */
    private void disconnectMidStream() throws Exception {
        String body = "{\"model\": \"mixtral\", \"stream\": true, \"max_tokens\": 400, \"ignore_eos\": true,"
                + " \"messages\": [{\"role\": \"user\", \"content\": \"go on and on\"}]}";
        try (Socket s = new Socket("127.0.0.1", gateway.httpPort)) {
            s.getOutputStream().write(("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
                    + body.getBytes(StandardCharsets.UTF_8).length + "\r\n\r\n" + body).getBytes(StandardCharsets.UTF_8));
            InputStream in = s.getInputStream();
            byte[] buf = new byte[512];
            int read = 0;
            while (read < 300) read += in.read(buf);
        }
        for (int i = 0; i < 100; i++) {
            if (running() == 0) return;
            Thread.sleep(100);
        }
        throw new AssertionError("the router still runs the abandoned sequence");
    }

    private static final Pattern RUNNING = Pattern.compile("moe_router_sequences\\{state=\"running\"\\} ([0-9.]+)");

    private double running() {
        Matcher m = RUNNING.matcher(d.router.get("/q/metrics"));
        return m.find() ? Double.parseDouble(m.group(1)) : -1;
    }

    @Test
    @Order(5)
    void stoppingTheOnlyPodOfSomeExpertsEndsTheRequestWithAClearError() {
        d.experts.get("high").getFirst().kill();
        long t0 = System.nanoTime();
        OpenAIException e = assertThrows(OpenAIException.class, () -> client.chat().completions().create(chat("Hello?", 16).build()));
        assertTrue(e.getMessage().contains("expert group high"), e.getMessage());
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(30), "a clear error, not a hang");
        assertTrue(gateway.isAlive() && d.router.isAlive());
    }

    private HttpResponse<String> post(String body, String type) throws Exception {
        return post(body.getBytes(StandardCharsets.UTF_8), type);
    }

    private HttpResponse<String> post(byte[] body, String type) throws Exception {
        return HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + gateway.httpPort + "/v1/chat/completions"))
                .header("Content-Type", type).timeout(Duration.ofSeconds(60)).POST(HttpRequest.BodyPublishers.ofByteArray(body)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    private static void assertError(HttpResponse<String> r, int status, String mention) {
        assertEquals(status, r.statusCode(), r.body());
        assertTrue(r.body().startsWith("{\"error\":"), r.body());
        assertTrue(r.body().contains(mention), r.body());
    }
}
