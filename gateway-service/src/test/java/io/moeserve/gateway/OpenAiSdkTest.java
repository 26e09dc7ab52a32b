package io.moeserve.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.http.StreamResponse;
import com.openai.errors.NotFoundException;
import com.openai.errors.RateLimitException;
import com.openai.errors.SseException;
import com.openai.errors.UnauthorizedException;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionStreamOptions;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionCreateParams;
import com.openai.models.completions.CompletionUsage;
import com.openai.models.models.Model;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * The official OpenAI Java SDK, unmodified and with strict response validation, as a client of the gateway:
 * whatever it cannot parse or finds missing fails these tests.
 */
@QuarkusTest
@WithTestResource(FakeRouterResource.class)
class OpenAiSdkTest {

    static OpenAIClient client(String apiKey) {
        return OpenAIOkHttpClient.builder()
                .baseUrl("http://localhost:" + Http.port() + "/v1")
                .apiKey(apiKey)
                .maxRetries(0)
                .timeout(Duration.ofSeconds(30))
                .responseValidation(true)
                .build();
    }

    static ChatCompletionCreateParams.Builder params(String userMessage) {
        return ChatCompletionCreateParams.builder().model("tiny-moe").addUserMessage(userMessage);
    }

    @Test
    void chatCompletionNotStreaming() {
        ChatCompletion c = client(FakeRouterResource.API_KEY).chat().completions().create(
                params("Hi FAKE{\"reply\":\"Hello, SDK! 😀\",\"tokenize\":\"bytes\"}").maxCompletionTokens(100)
                        .logprobs(true).topLogprobs(2).build());
        assertEquals("Hello, SDK! 😀", c.choices().getFirst().message().content().orElseThrow());
        assertEquals(ChatCompletion.Choice.FinishReason.STOP, c.choices().getFirst().finishReason());
        assertEquals("tiny-moe", c.model());
        assertTrue(c.usage().orElseThrow().completionTokens() > 0);
        assertEquals(-0.25, c.choices().getFirst().logprobs().orElseThrow().content().orElseThrow().getFirst().logprob(), 1e-6);
    }

    @Test
    void chatCompletionStreamingGivesTheSameText() {
        String prompt = "Hi FAKE{\"reply\":\"Streaming through the SDK, 多字节 too.\",\"tokenize\":\"bytes\",\"per_message\":2}";
        OpenAIClient client = client(FakeRouterResource.API_KEY);
        String whole = client.chat().completions().create(params(prompt).build())
                .choices().getFirst().message().content().orElseThrow();
        StringBuilder streamed = new StringBuilder();
        List<ChatCompletionChunk> chunks = new ArrayList<>();
        try (StreamResponse<ChatCompletionChunk> stream = client.chat().completions().createStreaming(params(prompt)
                .streamOptions(ChatCompletionStreamOptions.builder().includeUsage(true).build()).build())) {
            stream.stream().forEach(chunk -> {
                chunks.add(chunk);
                for (ChatCompletionChunk.Choice choice : chunk.choices()) choice.delta().content().ifPresent(streamed::append);
            });
        }
        assertEquals("Streaming through the SDK, 多字节 too.", whole);
        assertEquals(whole, streamed.toString());
        ChatCompletionChunk last = chunks.getLast();
        assertTrue(last.choices().isEmpty());
        assertTrue(last.usage().orElseThrow().totalTokens() > 0);
        assertTrue(chunks.stream().anyMatch(c -> !c.choices().isEmpty() && c.choices().getFirst().finishReason().isPresent()));
    }

    /** usage.prompt_tokens_details.cached_tokens is the router's count of prompt tokens its prefix cache served. */
    @Test
    void usageCountsThePromptTokensTheRoutersPrefixCacheServed() {
        OpenAIClient client = client(FakeRouterResource.API_KEY);
        String prompt = "A long enough system prompt, said twice, for two cache blocks or more: " + "lorem ipsum ".repeat(6)
                + "FAKE{\"reply\":\"cached\",\"prefix_cache\":true}";
        ChatCompletion first = client.chat().completions().create(params(prompt).build());
        ChatCompletion second = client.chat().completions().create(params(prompt).build());
        CompletionUsage cold = first.usage().orElseThrow();
        CompletionUsage warm = second.usage().orElseThrow();
        assertEquals(0, cold.promptTokensDetails().orElseThrow().cachedTokens().orElseThrow());
        long cached = warm.promptTokensDetails().orElseThrow().cachedTokens().orElseThrow();
        assertTrue(cached > 0 && cached < warm.promptTokens() && cached % 16 == 0, "cached " + cached + " of " + warm.promptTokens());
        List<ChatCompletionChunk> chunks = new ArrayList<>();
        try (StreamResponse<ChatCompletionChunk> stream = client.chat().completions().createStreaming(params(prompt)
                .streamOptions(ChatCompletionStreamOptions.builder().includeUsage(true).build()).build())) {
            stream.stream().forEach(chunks::add);
        }
        assertEquals(cached, chunks.getLast().usage().orElseThrow().promptTokensDetails().orElseThrow().cachedTokens().orElseThrow(),
                "the streamed usage chunk carries it too");
        String text = "Completions count them as well: " + "dolor sit amet ".repeat(8) + "FAKE{\"reply\":\" ok\",\"prefix_cache\":true}";
        CompletionCreateParams completion = CompletionCreateParams.builder().model("tiny-moe").prompt(text).maxTokens(10).build();
        assertEquals(0, client.completions().create(completion).usage().orElseThrow().promptTokensDetails().orElseThrow().cachedTokens()
                .orElseThrow());
        assertTrue(client.completions().create(completion).usage().orElseThrow().promptTokensDetails().orElseThrow().cachedTokens()
                .orElseThrow() > 0);
    }

    /** echo: each choice's text begins with its prompt; streamed, the prompt is the choice's first chunk. */
    @Test
    void echoPrependsThePromptToEachChoice() {
        OpenAIClient client = client(FakeRouterResource.API_KEY);
        String prompt = "Echo me FAKE{\"reply\":\" and the reply\",\"per_message\":3}";
        Completion whole = client.completions().create(CompletionCreateParams.builder().model("tiny-moe").prompt(prompt).echo(true)
                .n(2).maxTokens(20).build());
        assertEquals(2, whole.choices().size());
        for (var choice : whole.choices()) assertEquals(prompt + " and the reply", choice.text());
        List<String> texts = new ArrayList<>();
        // Without response validation here: the SDK's Completion requires a finish_reason, which a legacy completion's
        // chunks carry as null until the last (as OpenAI's own stream does), so a validating client rejects any stream.
        OpenAIClient lenient = client.withOptions(o -> o.responseValidation(false));
        try (StreamResponse<Completion> stream = lenient.completions().createStreaming(CompletionCreateParams.builder().model("tiny-moe")
                .prompt(prompt).echo(true).maxTokens(20).build())) {
            stream.stream().forEach(c -> c.choices().forEach(choice -> texts.add(choice.text())));
        }
        assertEquals(prompt, texts.getFirst(), "the first chunk is the prompt");
        assertEquals(prompt + " and the reply", String.join("", texts));
        // Token-id prompts echo their decoded text; without echo nothing is prepended.
        List<Long> ids = "Hi FAKE{\"reply\":\"!\"}".chars().mapToObj(c -> (long) c).toList();
        Completion byIds = client.completions().create(CompletionCreateParams.builder().model("tiny-moe")
                .prompt(CompletionCreateParams.Prompt.ofArrayOfTokens(ids)).echo(true).maxTokens(5).build());
        assertEquals("Hi FAKE{\"reply\":\"!\"}!", byIds.choices().getFirst().text());
        assertEquals(" and the reply", client.completions().create(CompletionCreateParams.builder().model("tiny-moe").prompt(prompt)
                .maxTokens(20).build()).choices().getFirst().text());
    }

    @Test
    void legacyCompletion() {
        Completion c = client(FakeRouterResource.API_KEY).completions().create(CompletionCreateParams.builder()
                .model("tiny-moe").prompt("Say FAKE{\"reply\":\" legacy\"}").maxTokens(10).build());
        assertEquals(" legacy", c.choices().getFirst().text());
    }

    @Test
    void models() {
        Model m = client(FakeRouterResource.API_KEY).models().retrieve("tiny-moe");
        assertEquals("tiny-moe", m.id());
        assertEquals(FakeRouter.CREATED, m.created());
        assertEquals(List.of("tiny-moe"), client(FakeRouterResource.API_KEY).models().list().data().stream().map(Model::id).toList());
    }

    @Test
    void errorsBecomeTheSdksExceptions() {
        assertThrows(UnauthorizedException.class, () -> client("sk-wrong").chat().completions().create(params("x").build()));
        NotFoundException notFound = assertThrows(NotFoundException.class, () -> client(FakeRouterResource.API_KEY)
                .chat().completions().create(ChatCompletionCreateParams.builder().model("nope").addUserMessage("x").build()));
        assertEquals("model_not_found", notFound.code().orElseThrow());
        RateLimitException busy = assertThrows(RateLimitException.class, () -> client(FakeRouterResource.API_KEY)
                .chat().completions().create(params("FAKE{\"error\":{\"code\":\"RESOURCE_EXHAUSTED\",\"retry_after_ms\":1000}}").build()));
        assertEquals("1", busy.headers().values("Retry-After").getFirst());
        // A failure after the stream has started reaches the SDK as an exception, not as a short answer.
        try (StreamResponse<ChatCompletionChunk> stream = client(FakeRouterResource.API_KEY).chat().completions()
                .createStreaming(params("FAKE{\"reply\":\"abc\",\"tokenize\":\"bytes\",\"error\":{\"code\":\"UNAVAILABLE\",\"after\":2}}").build())) {
            assertThrows(SseException.class, () -> stream.stream().forEach(chunk -> { }));
        }
    }
}
