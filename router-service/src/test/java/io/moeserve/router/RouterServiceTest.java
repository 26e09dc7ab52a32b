package io.moeserve.router;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moeserve.proto.router.v1.DescribeModelRequest;
import io.moeserve.proto.router.v1.FinishReason;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.proto.router.v1.ModelDescription;
import io.moeserve.proto.router.v1.RouterServiceGrpc;
import io.moeserve.proto.router.v1.SamplingParameters;
import io.moeserve.proto.router.v1.StructuredOutput;
import io.moeserve.proto.router.v1.TokenLogprob;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import jakarta.inject.Inject;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The router in all-in-one mode over real gRPC: what it generates, how it batches, what it refuses. */
@QuarkusTest
@QuarkusTestResource(value = TinyRouterModel.class, restrictToAnnotatedClass = true)
class RouterServiceTest {
    @Inject
    ServedModel served;

    static final int[] PROMPT = {5, 77, 300, 12, 9, 250, 31, 4, 199, 64, 18};
    private static ManagedChannel channel;
    private static RouterServiceGrpc.RouterServiceBlockingStub stub;

    @BeforeAll
    static void connect() {
        channel = ManagedChannelBuilder.forAddress("localhost", 19181).usePlaintext().build();
        stub = RouterServiceGrpc.newBlockingStub(channel);
    }

    @AfterAll
    static void close() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    static GenerateRequest greedy(int[] prompt, int maxNew) {
        GenerateRequest.Builder b = GenerateRequest.newBuilder().setModelId(TinyRouterModel.MODEL_ID).setMaxNewTokens(maxNew)
                .setIgnoreEos(true).setSampling(SamplingParameters.newBuilder().setTemperature(0));
        for (int t : prompt) b.addPromptTokenIds(t);
        return b.build();
    }

    static List<GenerateResponse> collect(GenerateRequest r) {
        List<GenerateResponse> out = new ArrayList<>();
        stub.withDeadlineAfter(60, TimeUnit.SECONDS).generate(r).forEachRemaining(out::add);
        return out;
    }

    static int[] tokens(List<GenerateResponse> rs) {
        return rs.stream().flatMap(r -> r.getTokenIdsList().stream()).mapToInt(Integer::intValue).toArray();
    }

    @Test
    void greedyOutputIsTheRuntimesOutputStreamedTokenByToken() {
        List<GenerateResponse> rs = collect(greedy(PROMPT, 12));
        assertArrayEquals(TinyRouterModel.reference(PROMPT, 12), tokens(rs));
        assertEquals(12, rs.size(), "one message per token");
        GenerateResponse last = rs.getLast();
        assertEquals(FinishReason.FINISH_REASON_LENGTH, last.getFinishReason());
        assertEquals(PROMPT.length, last.getUsage().getPromptTokens());
        assertEquals(12, last.getUsage().getCompletionTokens());
        for (int i = 0; i < rs.size() - 1; i++) assertEquals(FinishReason.FINISH_REASON_UNSPECIFIED, rs.get(i).getFinishReason());
    }

    @Test
    void concurrentSequencesOfDifferentLengthsEachGetWhatTheyWouldAlone() throws Exception {
        // A 40-token prompt is prefilled in 16-token chunks while the others decode.
        List<int[]> prompts = new ArrayList<>();
        for (int i = 0; i < 6; i++) {
            int[] p = new int[i == 0 ? 40 : 3 + 2 * i];
            for (int j = 0; j < p.length; j++) p[j] = (j * 37 + i * 11 + 1) % 384;
            prompts.add(p);
        }
        ExecutorService pool = Executors.newFixedThreadPool(prompts.size());
        try {
            List<Future<int[]>> got = new ArrayList<>();
            for (int[] p : prompts) got.add(pool.submit(() -> tokens(collect(greedy(p, 10)))));
            for (int i = 0; i < prompts.size(); i++) {
                assertArrayEquals(TinyRouterModel.reference(prompts.get(i), 10), got.get(i).get(120, TimeUnit.SECONDS), "prompt " + i);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void logprobsAreTheRawModelDistribution() {
        GenerateRequest r = greedy(PROMPT, 1).toBuilder().setLogprobs(true).setTopLogprobs(5).build();
        TokenLogprob lp = collect(r).getFirst().getLogprobs(0);
        float[] logits = TinyRouterModel.promptLogits(PROMPT);
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) max = Math.max(max, l);
        double sum = 0;
        for (float l : logits) sum += Math.exp(l - max);
        double lse = max + Math.log(sum);
        assertEquals(logits[lp.getTokenId()] - lse, lp.getLogprob(), 1e-4);
        assertEquals(5, lp.getTopTokenIdsCount());
        assertEquals(lp.getTokenId(), lp.getTopTokenIds(0), "greedy picks the most likely token");
        for (int j = 0; j < 5; j++) {
            assertEquals(logits[lp.getTopTokenIds(j)] - lse, lp.getTopLogprobs(j), 1e-4);
            if (j > 0) assertTrue(lp.getTopLogprobs(j) <= lp.getTopLogprobs(j - 1));
        }
    }

    @Test
    void seededSamplingIsReproducible() {
        GenerateRequest r = greedy(PROMPT, 16).toBuilder()
                .setSampling(SamplingParameters.newBuilder().setTemperature(1.2f).setTopP(0.9f).setSeed(42)).build();
        int[] a = tokens(collect(r));
        int[] b = tokens(collect(r));
        assertArrayEquals(a, b);
        int[] c = tokens(collect(r.toBuilder().setSampling(r.getSampling().toBuilder().setSeed(43)).build()));
        assertTrue(!java.util.Arrays.equals(a, c), "another seed, another sample");
    }

    @Test
    void aResumedSequenceContinuesWhereTheFirstRouterStopped() {
        // Request migration: prompt + the first k tokens, the k marked as output, give the rest of the same stream,
        // greedy and seeded with penalties alike, and usage counts only what this router generated.
        GenerateRequest seeded = greedy(PROMPT, 16).toBuilder().setSampling(SamplingParameters.newBuilder()
                .setTemperature(1.2f).setTopP(0.9f).setSeed(7).setFrequencyPenalty(0.4f).setRepetitionPenalty(1.1f)).build();
        for (GenerateRequest whole : List.of(greedy(PROMPT, 16), seeded)) {
            int[] all = tokens(collect(whole));
            int k = 5;
            GenerateRequest.Builder rest = whole.toBuilder().setMaxNewTokens(16 - k).setResumedOutputTokens(k);
            for (int i = 0; i < k; i++) rest.addPromptTokenIds(all[i]);
            List<GenerateResponse> rs = collect(rest.build());
            assertArrayEquals(java.util.Arrays.copyOfRange(all, k, 16), tokens(rs), whole.getSampling().toString());
            assertEquals(16 - k, rs.getLast().getUsage().getCompletionTokens());
        }
        assertStatus(Status.Code.INVALID_ARGUMENT, "must leave at least one", greedy(PROMPT, 2).toBuilder()
                .setResumedOutputTokens(PROMPT.length).build());
    }

    @Test
    void stopTokensEndTheSequenceAndAreIncluded() {
        int[] free = TinyRouterModel.reference(PROMPT, 6);
        GenerateRequest r = greedy(PROMPT, 20).toBuilder().addStopTokenIds(free[3]).build();
        List<GenerateResponse> rs = collect(r);
        int[] got = tokens(rs);
        int first = 0;
        while (free[first] != free[3]) first++;
        assertArrayEquals(java.util.Arrays.copyOf(free, first + 1), got);
        assertEquals(FinishReason.FINISH_REASON_STOP, rs.getLast().getFinishReason());
    }

    @Test
    void refusesBadRequestsWithTheContractsStatus() {
        assertStatus(Status.Code.NOT_FOUND, "serves model 'tiny-router'", greedy(PROMPT, 4).toBuilder().setModelId("gpt-4").build());
        assertStatus(Status.Code.INVALID_ARGUMENT, "outside the vocabulary", greedy(new int[] {1, 384}, 4));
        assertStatus(Status.Code.INVALID_ARGUMENT, "at least one token", greedy(new int[0], 4));
        assertStatus(Status.Code.INVALID_ARGUMENT, "max_new_tokens must be at least 1", greedy(PROMPT, 0));
        assertStatus(Status.Code.OUT_OF_RANGE, "over the context limit of 256", greedy(PROMPT, 250));
        assertStatus(Status.Code.INVALID_ARGUMENT, "top_logprobs must be at most 20", greedy(PROMPT, 2).toBuilder().setTopLogprobs(21).build());
        assertStatus(Status.Code.INVALID_ARGUMENT, "temperature", greedy(PROMPT, 2).toBuilder()
                .setSampling(SamplingParameters.newBuilder().setTemperature(-1)).build());
        assertStatus(Status.Code.INVALID_ARGUMENT, "top_p", greedy(PROMPT, 2).toBuilder()
                .setSampling(SamplingParameters.newBuilder().setTopP(0)).build());
        // Still serving.
        assertEquals(2, tokens(collect(greedy(PROMPT, 2))).length);
    }

    @Test
    void aJsonSchemaConstrainsSampledOutputToAValidValue() throws Exception {
        String schema = """
                {"type": "object", "properties": {"name": {"type": "string", "maxLength": 6},
                 "age": {"type": "integer"}, "tags": {"type": "array", "items": {"enum": ["a", "bc"]}, "maxItems": 2},
                 "ok": {"type": "boolean"}}, "required": ["name", "age", "ok"], "additionalProperties": false}""";
        var json = new com.fasterxml.jackson.databind.ObjectMapper();
        int complete = 0;
        for (long seed = 1; seed <= 6; seed++) {
            GenerateRequest r = greedy(PROMPT, 200).toBuilder().setIgnoreEos(false)
                    .setStructuredOutput(StructuredOutput.newBuilder().setJsonSchema(schema))
                    .setSampling(SamplingParameters.newBuilder().setTemperature(1).setSeed(seed)).build();
            List<GenerateResponse> rs = collect(r);
            java.io.ByteArrayOutputStream text = new java.io.ByteArrayOutputStream();
            for (int t : tokens(rs)) if (t < 381) text.writeBytes(TinyRouterModel.bytes(t));
            if (rs.getLast().getFinishReason() == FinishReason.FINISH_REASON_LENGTH) continue;
            complete++;
            var value = json.readTree(text.toByteArray());
            String v = value.toString();
            assertTrue(value.get("name").isTextual() && value.get("name").textValue().codePointCount(0,
                    value.get("name").textValue().length()) <= 6, v);
            assertTrue(value.get("age").isIntegralNumber(), v);
            assertTrue(value.get("ok").isBoolean(), v);
            assertTrue(!value.has("tags") || value.get("tags").size() <= 2, v);
            for (var it = value.fieldNames(); it.hasNext(); ) assertTrue(List.of("name", "age", "tags", "ok").contains(it.next()), v);
        }
        assertTrue(complete >= 3, "only " + complete + " of 6 sampled outputs closed within 200 tokens");
        List<GenerateResponse> marked = collect(greedy(PROMPT, 40).toBuilder().setStructuredOutput(StructuredOutput.newBuilder()
                .setJsonSchema("{\"type\": \"boolean\"}").setPrefix("<call>\n").setSuffix("\n</call>")).build());
        java.io.ByteArrayOutputStream text = new java.io.ByteArrayOutputStream();
        for (int t : tokens(marked)) text.writeBytes(TinyRouterModel.bytes(t));
        assertTrue(List.of("<call>\ntrue\n</call>", "<call>\nfalse\n</call>").contains(text.toString(java.nio.charset.StandardCharsets.UTF_8)),
                text.toString(java.nio.charset.StandardCharsets.UTF_8));
        assertEquals(FinishReason.FINISH_REASON_STOP, marked.getLast().getFinishReason());
        assertStatus(Status.Code.INVALID_ARGUMENT, "'pattern' at /properties/a", greedy(PROMPT, 4).toBuilder()
                .setStructuredOutput(StructuredOutput.newBuilder()
                        .setJsonSchema("{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\", \"pattern\": \"x\"}}}")).build());
    }

    private static void assertStatus(Status.Code code, String message, GenerateRequest r) {
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> collect(r));
        assertEquals(code, e.getStatus().getCode(), e.getStatus().toString());
        assertTrue(e.getStatus().getDescription().contains(message), e.getStatus().getDescription());
    }

    /** A request's own expert skip threshold: 0 is the default output, 1 drops pairs that the router counts. */
    @Test
    void aRequestsSkipThresholdIsHonouredAndCounted() throws Exception {
        assertArrayEquals(TinyRouterModel.reference(PROMPT, 6), tokens(collect(greedy(PROMPT, 6).toBuilder().setSkipThreshold(0).build())));
        long before = skippedPairs();
        assertEquals(4, tokens(collect(greedy(PROMPT, 4).toBuilder().setSkipThreshold(1).build())).length);
        long after = before;
        // The stream's last token may arrive just before its step's counts are committed.
        for (int i = 0; i < 100 && after == before; i++) {
            Thread.sleep(10);
            after = skippedPairs();
        }
        assertTrue(after > before, "threshold 1 keeps only each token's top expert: " + before + " -> " + after);
        given().get("/q/metrics").then().statusCode(200)
                .body(containsString("moe_router_expert_skipped_pairs_total"))
                .body(containsString("moe_router_expert_skipped_calls_total"));
        assertStatus(Status.Code.INVALID_ARGUMENT, "skip_threshold must lie in [0, 1]", greedy(PROMPT, 2).toBuilder().setSkipThreshold(1.5f).build());
    }

    private static long skippedPairs() {
        List<List<?>> rows = given().get("/v1/routing-stats").then().extract().jsonPath().getList("skipped_pairs");
        long sum = 0;
        for (List<?> row : rows) for (Object v : row) sum += ((Number) v).longValue();
        return sum;
    }

    @Test
    void aDeadlineEndsTheSequence() {
        GenerateRequest r = greedy(PROMPT, 200).toBuilder().setDeadlineUnixMillis(System.currentTimeMillis() + 1).build();
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> collect(r));
        assertEquals(Status.Code.DEADLINE_EXCEEDED, e.getStatus().getCode());
    }

    @Test
    void cancellingFreesTheKvCache() throws Exception {
        ModelDescription before = stub.describeModel(DescribeModelRequest.getDefaultInstance());
        assertEquals(before.getKvCacheTokens(), before.getKvCacheFreeTokens(), "nothing running before");
        Context.CancellableContext ctx = Context.current().withCancellation();
        Iterator<GenerateResponse> it = ctx.call(() -> stub.generate(greedy(PROMPT, 240)));
        it.next();
        // Blocks are taken as the sequence grows and published after the step that streamed the token.
        ModelDescription during = stub.describeModel(DescribeModelRequest.getDefaultInstance());
        for (int i = 0; i < 200 && during.getKvCacheFreeTokens() == during.getKvCacheTokens(); i++) {
            Thread.sleep(10);
            during = stub.describeModel(DescribeModelRequest.getDefaultInstance());
        }
        assertTrue(during.getKvCacheFreeTokens() < during.getKvCacheTokens(), "the running sequence holds cache");
        ctx.cancel(null);
        long free = 0;
        for (int i = 0; i < 200 && free != before.getKvCacheTokens(); i++) {
            Thread.sleep(10);
            free = stub.describeModel(DescribeModelRequest.getDefaultInstance()).getKvCacheFreeTokens();
        }
        assertEquals(before.getKvCacheTokens(), free, "the cancelled sequence's cache is freed");
    }

    @Test
    void aPromptSeenBeforeIsTakenFromThePrefixCacheAndGivesTheSameOutput() throws Exception {
        int[] prompt = new int[40];
        for (int j = 0; j < prompt.length; j++) prompt[j] = (j * 53 + 29) % 384;
        // Read from this app's engine: a meter of an app started earlier in this JVM (another test class) keeps its name
        // in Micrometer's global registry, and with it that app's engine.
        long before = served.engine().prefixHitTokens();
        List<GenerateResponse> cold = collect(greedy(prompt, 6));
        List<GenerateResponse> warm = collect(greedy(prompt, 6));
        assertArrayEquals(TinyRouterModel.reference(prompt, 6), tokens(cold));
        assertArrayEquals(TinyRouterModel.reference(prompt, 6), tokens(warm), "the cache hit's output");
        assertEquals(0, cold.getLast().getUsage().getCachedPromptTokens(), "nothing was cached before the first request");
        assertEquals(32, warm.getLast().getUsage().getCachedPromptTokens(), "the second request's usage counts its two cached blocks");
        long hits = before;
        for (int i = 0; i < 200 && hits - before < 32; i++) {
            Thread.sleep(10);
            hits = served.engine().prefixHitTokens();
        }
        assertEquals(32, hits - before, "the second request took the prompt's two full blocks from the cache");
        assertTrue(served.engine().prefixQueriedTokens() >= 80);
        assertTrue(served.engine().cachedBlocks() >= 2);
        String metrics = given().get("/q/metrics").then().statusCode(200).extract().asString();
        for (String name : List.of("moe_router_prefix_cache_hit_tokens_total", "moe_router_prefix_cache_queried_tokens_total",
                "moe_router_prefix_cache_blocks")) {
            assertTrue(metrics.contains("\n" + name + " "), name + " is exported");
        }
    }

    @Test
    void describesTheModelAndExportsRoutingStatistics() {
        ModelDescription d = stub.describeModel(DescribeModelRequest.getDefaultInstance());
        assertEquals(TinyRouterModel.MODEL_ID, d.getModelId());
        assertEquals("MixtralForCausalLM", d.getArchitecture());
        assertEquals(384, d.getVocabSize());
        assertEquals(256, d.getMaxContext());
        collect(greedy(PROMPT, 3));
        given().get("/v1/routing-stats").then().statusCode(200)
                .body("schema", equalTo("moe-serve.routing-stats.v1"))
                .body("model", equalTo(TinyRouterModel.MODEL_ID))
                .body("router", org.hamcrest.Matchers.matchesPattern(".+:[0-9]+"))
                .body("num_experts", equalTo(8))
                .body("tokens.size()", equalTo(3));
        long total = given().get("/v1/routing-stats").then().extract().jsonPath().getLong("total_tokens");
        long pairs = given().get("/v1/routing-stats").then().extract().jsonPath().getList("tokens[0]", Long.class)
                .stream().mapToLong(Long::longValue).sum();
        assertEquals(2 * total, pairs, "top-2: two experts per token in layer 0");
        List<Float> meanWeights = given().get("/v1/routing-stats").then().extract().jsonPath().getList("mean_weights[0]", Float.class);
        assertEquals(8, meanWeights.size());
        for (float w : meanWeights) assertTrue(w >= 0 && w <= 1, "a mean of softmax weights: " + meanWeights);
        assertTrue(meanWeights.stream().anyMatch(w -> w > 0));
        given().get("/q/metrics").then().statusCode(200)
                .body(containsString("moe_router_expert_tokens_total{expert=\"0\",layer=\"0\"}"))
                .body(containsString("moe_router_generated_tokens_total"))
                .body(containsString("moe_router_kv_cache_free_tokens"))
                .body(containsString("moe_router_sequences{state=\"running\"}"));
        given().get("/q/health/ready").then().statusCode(200);
    }
}
