package io.moeserve.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.openai.client.OpenAIClient;
import com.openai.core.JsonValue;
import com.openai.core.http.StreamResponse;
import com.openai.models.FunctionDefinition;
import com.openai.models.FunctionParameters;
import com.openai.models.ReasoningEffort;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionAssistantMessageParam;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionMessage;
import com.openai.models.chat.completions.ChatCompletionMessageFunctionToolCall;
import com.openai.models.chat.completions.ChatCompletionToolMessageParam;
import io.moeserve.tokenizer.synthetic.SyntheticTokenizerBuilder;
import io.moeserve.tokenizer.synthetic.TokenizerFormat;
import io.quarkus.test.common.ResourceArg;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.junit.jupiter.api.Test;

/**
 * A gpt-oss conversation with a tool call, end to end through the official OpenAI Java SDK (strict response
 * validation on): the gateway serves a checkpoint with gpt-oss's tokenizer and official chat template, and the
 * fake router answers with scripted harmony output.
 *
 * <p>The conversation is {@code harmony/cases.json}: a system message, a user message (whose FAKE script is the
 * model: a tool call first, and once the tool's result is in the prompt, the answer) and a tool with a nested
 * JSON-schema. {@code harmony/expected/*.txt} are the prompts Python's jinja2 renders from it with the official
 * template, as transformers sets jinja2 up (tokenizer/src/test/resources/chat-templates/render_golden.py, run on
 * a directory holding that cases.json and chat-templates/gpt_oss's chat_template.jinja and tokenizer_config.json,
 * with strftime_now fixed at 2025-08-05): the router must receive exactly those, bar the current date.
 *
 * <p>The SDK has no typed field for reasoning_content (it is not OpenAI's); it keeps unknown fields, so the tests
 * read it from {@code _additionalProperties()} of the message and of each delta, and send it back the same way,
 * as an additional property of the assistant message, which is how vLLM's clients do it.
 */
@QuarkusTest
@WithTestResource(value = FakeRouterResource.class, initArgs = @ResourceArg(name = "format", value = "harmony"))
class HarmonyOpenAiSdkTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String REASONING = "The user wants the weather in Paris; call get_weather.";
    private static final String TOOL_RESULT = "{\"sky\":\"sunny\",\"temperature_c\":24}";

    @InjectFakeRouter
    FakeRouter router;

    /** The first request of the conversation: system, user, the tool, reasoning_effort low (cases.json). */
    private static ChatCompletionCreateParams.Builder firstRequest() {
        JsonNode request = testCase("tool_call_request");
        JsonNode function = request.at("/tools/0/function");
        FunctionParameters.Builder parameters = FunctionParameters.builder();
        // Field by field, in order: the template writes the properties in the order they came.
        function.get("parameters").properties().forEach(e -> parameters.putAdditionalProperty(e.getKey(),
                JsonValue.fromJsonNode(e.getValue())));
        return ChatCompletionCreateParams.builder().model(FakeRouterResource.HARMONY_MODEL_ID)
                .addSystemMessage(request.at("/messages/0/content").asText())
                .addUserMessage(request.at("/messages/1/content").asText())
                .addFunctionTool(FunctionDefinition.builder().name(function.get("name").asText())
                        .description(function.get("description").asText()).parameters(parameters.build()).build())
                .reasoningEffort(ReasoningEffort.LOW);
    }

    @Test
    void aToolCallComesBackParsedAndTheRouterSawTheToolsDefinition() {
        ChatCompletion c = client().chat().completions().create(firstRequest().build());

        ChatCompletion.Choice choice = c.choices().getFirst();
        assertEquals(ChatCompletion.Choice.FinishReason.TOOL_CALLS, choice.finishReason());
        ChatCompletionMessage message = choice.message();
        assertEquals(REASONING, reasoning(message._additionalProperties()));
        assertTrue(message.content().isEmpty(), "a message that only calls a tool has no content");
        List<ChatCompletionMessageFunctionToolCall> calls = message.toolCalls().orElseThrow().stream()
                .map(call -> call.asFunction()).toList();
        assertEquals(1, calls.size());
        assertEquals("get_weather", calls.getFirst().function().name());
        assertEquals("{\"city\":\"Paris\"}", calls.getFirst().function().arguments());
        assertTrue(calls.getFirst().id().startsWith("call_"), calls.getFirst().id());

        FakeRouter.Call call = call(c.id());
        assertEquals(expectedPrompt("tool_call_request"), withFixedDate(call.prompt));
        assertTrue(call.prompt.contains("namespace functions {\n\n// Get the current weather in a city\n"
                + "type get_weather = (_: {"), "the tool is declared as TypeScript");
        Map<String, Integer> ids = SyntheticTokenizerBuilder.specialTokenIds(FakeRouterResource.HARMONY_VOCAB,
                TokenizerFormat.harmony());
        assertTrue(call.request.getStopTokenIdsList().containsAll(List.of(ids.get("<|return|>"), ids.get("<|call|>"))),
                "the turn's ends are sent as stop tokens: " + call.request.getStopTokenIdsList());
    }

    @Test
    void theStreamsDeltasReassembleToTheSameToolCall() {
        ChatCompletion whole = client().chat().completions().create(firstRequest().build());
        ChatCompletionMessageFunctionToolCall wholeCall = whole.choices().getFirst().message().toolCalls()
                .orElseThrow().getFirst().asFunction();

        StringBuilder reasoning = new StringBuilder();
        StringBuilder content = new StringBuilder();
        List<String> ids = new ArrayList<>();
        List<String> names = new ArrayList<>();
        StringBuilder arguments = new StringBuilder();
        int argumentDeltas = 0;
        String finishReason = null;
        String id = null;
        try (StreamResponse<ChatCompletionChunk> stream = client().chat().completions()
                .createStreaming(firstRequest().build())) {
            for (ChatCompletionChunk chunk : (Iterable<ChatCompletionChunk>) stream.stream()::iterator) {
                id = chunk.id();
                for (ChatCompletionChunk.Choice choice : chunk.choices()) {
                    ChatCompletionChunk.Choice.Delta delta = choice.delta();
                    String r = reasoning(delta._additionalProperties());
                    if (r != null) reasoning.append(r);
                    delta.content().ifPresent(content::append);
                    for (ChatCompletionChunk.Choice.Delta.ToolCall piece : delta.toolCalls().orElse(List.of())) {
                        assertEquals(0, piece.index());
                        piece.id().ifPresent(ids::add);
                        piece.function().flatMap(f -> f.name()).ifPresent(names::add);
                        String fragment = piece.function().flatMap(f -> f.arguments()).orElse("");
                        if (!fragment.isEmpty()) argumentDeltas++;
                        arguments.append(fragment);
                    }
                    if (choice.finishReason().isPresent()) finishReason = choice.finishReason().get().asString();
                }
            }
        }
        assertEquals(REASONING, reasoning.toString());
        assertEquals("", content.toString());
        assertEquals(1, ids.size(), "the id comes once, with the call's first piece");
        assertTrue(ids.getFirst().startsWith("call_"), ids.getFirst());
        assertEquals(List.of(wholeCall.function().name()), names);
        assertEquals(wholeCall.function().arguments(), arguments.toString());
        assertTrue(argumentDeltas > 1, "the arguments are streamed as they are generated, not in one piece");
        assertEquals("tool_calls", finishReason);
        assertEquals(expectedPrompt("tool_call_request"), withFixedDate(call(id).prompt));
    }

    @Test
    void theToolsResultIsRenderedBackAndTheAnswerIsContent() {
        OpenAIClient client = client();
        ChatCompletion first = client.chat().completions().create(firstRequest().build());
        ChatCompletionMessage assistant = first.choices().getFirst().message();
        ChatCompletionMessageFunctionToolCall toolCall = assistant.toolCalls().orElseThrow().getFirst().asFunction();
        // reasoning_content goes back as an extra property of the assistant message (the SDK has no field for it).
        ChatCompletionAssistantMessageParam back = assistant.toParam().toBuilder()
                .putAdditionalProperty("reasoning_content", JsonValue.from(reasoning(assistant._additionalProperties())))
                .build();

        ChatCompletion answer = client.chat().completions().create(firstRequest().addMessage(back)
                .addMessage(ChatCompletionToolMessageParam.builder().toolCallId(toolCall.id()).content(TOOL_RESULT).build())
                .build());

        assertEquals(expectedPrompt("tool_result_follow_up"), withFixedDate(call(answer.id()).prompt));
        ChatCompletion.Choice choice = answer.choices().getFirst();
        assertEquals("It is sunny.", choice.message().content().orElseThrow());
        assertEquals(ChatCompletion.Choice.FinishReason.STOP, choice.finishReason());
        assertTrue(choice.message().toolCalls().isEmpty() || choice.message().toolCalls().get().isEmpty());
        assertNull(reasoning(choice.message()._additionalProperties()), "no analysis, no reasoning_content");
        assertFalse(call(answer.id()).prompt.contains("\"{\\\"city\\\""),
                "the call's arguments reach the template as the object, not as a quoted string");
    }

    @Test
    void eachOfNChoicesIsParsedOnItsOwnWithItsLogprobs() {
        List<StringBuilder> reasoning = List.of(new StringBuilder(), new StringBuilder());
        List<StringBuilder> arguments = List.of(new StringBuilder(), new StringBuilder());
        List<List<String>> ids = List.of(new ArrayList<>(), new ArrayList<>());
        List<String> finishReasons = new ArrayList<>(List.of("", ""));
        int[] logprobs = new int[2];
        try (StreamResponse<ChatCompletionChunk> stream = client().chat().completions()
                .createStreaming(firstRequest().n(2).logprobs(true).topLogprobs(1).build())) {
            for (ChatCompletionChunk chunk : (Iterable<ChatCompletionChunk>) stream.stream()::iterator) {
                for (ChatCompletionChunk.Choice choice : chunk.choices()) {
                    int i = (int) choice.index();
                    String r = reasoning(choice.delta()._additionalProperties());
                    if (r != null) reasoning.get(i).append(r);
                    for (ChatCompletionChunk.Choice.Delta.ToolCall piece : choice.delta().toolCalls().orElse(List.of())) {
                        piece.id().ifPresent(ids.get(i)::add);
                        arguments.get(i).append(piece.function().flatMap(f -> f.arguments()).orElse(""));
                    }
                    logprobs[i] += choice.logprobs().flatMap(l -> l.content()).map(List::size).orElse(0);
                    if (choice.finishReason().isPresent()) finishReasons.set(i, choice.finishReason().get().asString());
                }
            }
        }
        for (int i = 0; i < 2; i++) {
            assertEquals(REASONING, reasoning.get(i).toString(), "choice " + i);
            assertEquals("{\"city\":\"Paris\"}", arguments.get(i).toString(), "choice " + i);
            assertEquals("tool_calls", finishReasons.get(i), "choice " + i);
            assertEquals(1, ids.get(i).size(), "choice " + i);
            assertTrue(logprobs[i] > 10, "every token but <|call|> has its entry: " + logprobs[i]);
        }
        assertFalse(ids.get(0).equals(ids.get(1)), "tool call ids are unique per choice: " + ids);
    }

    private static OpenAIClient client() {
        return OpenAiSdkTest.client(FakeRouterResource.API_KEY);
    }

    private FakeRouter.Call call(String completionId) {
        try {
            return router.call(completionId + "-0");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    /** reasoning_content of a message or delta, which the SDK keeps among the properties it does not know. */
    private static String reasoning(Map<String, JsonValue> additionalProperties) {
        JsonValue value = additionalProperties.get("reasoning_content");
        return value == null ? null : value.convert(String.class);
    }

    private static JsonNode testCase(String name) {
        try (InputStream in = Objects.requireNonNull(HarmonyOpenAiSdkTest.class.getResourceAsStream("/harmony/cases.json"))) {
            for (JsonNode c : JSON.readTree(in)) {
                if (c.get("name").asText().equals(name)) return c;
            }
            throw new AssertionError("no case " + name);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    private static String expectedPrompt(String name) {
        try (InputStream in = Objects.requireNonNull(HarmonyOpenAiSdkTest.class.getResourceAsStream(
                "/harmony/expected/" + name + ".txt"))) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    /** The template writes today's date; the golden files were rendered on 2025-08-05. */
    private static String withFixedDate(String prompt) {
        return prompt.replaceFirst("Current date: \\d{4}-\\d{2}-\\d{2}\n", "Current date: 2025-08-05\n");
    }
}
