package io.moeserve.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.openai.client.OpenAIClient;
import com.openai.core.JsonValue;
import com.openai.core.http.StreamResponse;
import com.openai.models.FunctionDefinition;
import com.openai.models.FunctionParameters;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionAssistantMessageParam;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.chat.completions.ChatCompletionMessage;
import com.openai.models.chat.completions.ChatCompletionMessageFunctionToolCall;
import com.openai.models.chat.completions.ChatCompletionNamedToolChoice;
import com.openai.models.chat.completions.ChatCompletionToolChoiceOption;
import com.openai.models.chat.completions.ChatCompletionToolMessageParam;
import io.moeserve.proto.router.v1.StructuredOutput;
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
 * A Qwen3 conversation with a tool call, end to end through the official OpenAI Java SDK: the gateway serves a
 * checkpoint with Qwen3's official chat template (so moe.gateway.output-parser=auto reads Qwen's format), and the
 * fake router answers with scripted Qwen3 output: a think block, then a Hermes-style {@code <tool_call>}; once the
 * tool's result is in the prompt, a think block and the answer. The synthetic tokenizer has no added tokens for
 * {@code <think>} or {@code <tool_call>}, so the markers arrive split over several tokens, one token per message:
 * the parser must hold their beginnings back.
 *
 * <p>{@code qwen3/cases.json} is the conversation and {@code qwen3/expected/*.txt} the prompts Python's jinja2
 * renders from it with the official template (see qwen3/README.md): the router must receive exactly those.
 */
@QuarkusTest
@WithTestResource(value = FakeRouterResource.class, initArgs = @ResourceArg(name = "format", value = "qwen3"))
class Qwen3OpenAiSdkTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String REASONING = "The user wants the weather in Paris; call get_weather.";
    private static final String TOOL_RESULT = "{\"sky\":\"sunny\",\"temperature_c\":24}";

    @InjectFakeRouter
    FakeRouter router;

    /** The first request of the conversation: system, user, the tool (cases.json). */
    private static ChatCompletionCreateParams.Builder firstRequest() {
        JsonNode request = testCase("tool_call_request");
        JsonNode function = request.at("/tools/0/function");
        FunctionParameters.Builder parameters = FunctionParameters.builder();
        function.get("parameters").properties().forEach(e -> parameters.putAdditionalProperty(e.getKey(),
                JsonValue.fromJsonNode(e.getValue())));
        return ChatCompletionCreateParams.builder().model(FakeRouterResource.QWEN3_MODEL_ID)
                .addSystemMessage(request.at("/messages/0/content").asText())
                .addUserMessage(request.at("/messages/1/content").asText())
                .addFunctionTool(FunctionDefinition.builder().name(function.get("name").asText())
                        .description(function.get("description").asText()).parameters(parameters.build()).build());
    }

    @Test
    void aToolCallComesBackParsedWithItsReasoning() {
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
        assertEquals(expectedPrompt("tool_call_request"), call(c.id()).prompt);
    }

    /**
     * tool_choice required and named: the router is asked to hold the output to one call in Qwen's format, the
     * function's parameters schema inside; what comes back is parsed into tool_calls as usual.
     */
    @Test
    void toolChoiceRequiredOrNamedConstrainsTheOutputToOneQwenCall() throws Exception {
        JsonNode parameters = testCase("tool_call_request").at("/tools/0/function/parameters");
        for (ChatCompletionCreateParams p : List.of(
                firstRequest().toolChoice(ChatCompletionToolChoiceOption.Auto.REQUIRED).build(),
                firstRequest().toolChoice(ChatCompletionNamedToolChoice.builder()
                        .function(ChatCompletionNamedToolChoice.Function.builder().name("get_weather").build()).build()).build())) {
            ChatCompletion c = client().chat().completions().create(p);
            assertEquals(ChatCompletion.Choice.FinishReason.TOOL_CALLS, c.choices().getFirst().finishReason());
            StructuredOutput sent = call(c.id()).request.getStructuredOutput();
            assertEquals("<tool_call>\n", sent.getPrefix());
            assertEquals("\n</tool_call>", sent.getSuffix());
            JsonNode schema = JSON.readTree(sent.getJsonSchema());
            assertEquals("get_weather", schema.at("/properties/name/const").asText(), schema.toString());
            assertEquals(parameters, schema.at("/properties/arguments"));
            assertEquals("[\"name\",\"arguments\"]", schema.get("required").toString());
            assertEquals(expectedPrompt("tool_call_request"), call(c.id()).prompt, "the tools are rendered as with auto");
        }
    }

    @Test
    void theStreamsDeltasReassembleToTheSameToolCall() {
        StringBuilder reasoning = new StringBuilder();
        StringBuilder content = new StringBuilder();
        List<String> ids = new ArrayList<>();
        List<String> names = new ArrayList<>();
        StringBuilder arguments = new StringBuilder();
        int reasoningDeltas = 0;
        String finishReason = null;
        try (StreamResponse<ChatCompletionChunk> stream = client().chat().completions()
                .createStreaming(firstRequest().build())) {
            for (ChatCompletionChunk chunk : (Iterable<ChatCompletionChunk>) stream.stream()::iterator) {
                for (ChatCompletionChunk.Choice choice : chunk.choices()) {
                    ChatCompletionChunk.Choice.Delta delta = choice.delta();
                    String r = reasoning(delta._additionalProperties());
                    if (r != null) {
                        reasoning.append(r);
                        reasoningDeltas++;
                    }
                    delta.content().ifPresent(content::append);
                    for (ChatCompletionChunk.Choice.Delta.ToolCall piece : delta.toolCalls().orElse(List.of())) {
                        assertEquals(0, piece.index());
                        piece.id().ifPresent(ids::add);
                        piece.type().ifPresent(type -> assertEquals("function", type.asString()));
                        piece.function().flatMap(f -> f.name()).ifPresent(names::add);
                        arguments.append(piece.function().flatMap(f -> f.arguments()).orElse(""));
                    }
                    if (choice.finishReason().isPresent()) finishReason = choice.finishReason().get().asString();
                }
            }
        }
        assertEquals(REASONING, reasoning.toString());
        assertTrue(reasoningDeltas > 1, "reasoning is streamed as it is generated: " + reasoningDeltas);
        assertEquals("", content.toString(), "no marker and no markup whitespace leaks into content");
        assertEquals(1, ids.size(), "the id comes once, with the call's name");
        assertEquals(List.of("get_weather"), names);
        assertEquals("{\"city\":\"Paris\"}", arguments.toString());
        assertEquals("tool_calls", finishReason);
    }

    @Test
    void theToolsResultIsRenderedBackByQwen3sTemplateAndTheAnswerIsContent() {
        OpenAIClient client = client();
        ChatCompletion first = client.chat().completions().create(firstRequest().build());
        ChatCompletionMessage assistant = first.choices().getFirst().message();
        ChatCompletionMessageFunctionToolCall toolCall = assistant.toolCalls().orElseThrow().getFirst().asFunction();
        // reasoning_content goes back as an extra property of the assistant message, which Qwen3's template reads.
        ChatCompletionAssistantMessageParam back = assistant.toParam().toBuilder()
                .putAdditionalProperty("reasoning_content", JsonValue.from(reasoning(assistant._additionalProperties())))
                .build();

        ChatCompletion answer = client.chat().completions().create(firstRequest().addMessage(back)
                .addMessage(ChatCompletionToolMessageParam.builder().toolCallId(toolCall.id()).content(TOOL_RESULT).build())
                .build());

        assertEquals(expectedPrompt("tool_result_follow_up"), call(answer.id()).prompt);
        ChatCompletion.Choice choice = answer.choices().getFirst();
        assertEquals("It is sunny in Paris, 24 degrees.", choice.message().content().orElseThrow());
        assertEquals("The tool says sunny.", reasoning(choice.message()._additionalProperties()));
        assertEquals(ChatCompletion.Choice.FinishReason.STOP, choice.finishReason());
        assertTrue(choice.message().toolCalls().isEmpty() || choice.message().toolCalls().get().isEmpty());
    }

    @Test
    void withoutToolsOrThinkingTheAnswerIsPlainContent() {
        ChatCompletion c = client().chat().completions().create(ChatCompletionCreateParams.builder()
                .model(FakeRouterResource.QWEN3_MODEL_ID)
                .addUserMessage("Hi FAKE{\"reply\":\"Hello! \\u003ctool is a word.\"}").build());
        ChatCompletion.Choice choice = c.choices().getFirst();
        assertEquals("Hello! <tool is a word.", choice.message().content().orElseThrow());
        assertNull(reasoning(choice.message()._additionalProperties()));
        assertEquals(ChatCompletion.Choice.FinishReason.STOP, choice.finishReason());
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
        try (InputStream in = Objects.requireNonNull(Qwen3OpenAiSdkTest.class.getResourceAsStream("/qwen3/cases.json"))) {
            for (JsonNode c : JSON.readTree(in)) {
                if (c.get("name").asText().equals(name)) return c;
            }
            throw new AssertionError("no case " + name);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    private static String expectedPrompt(String name) {
        try (InputStream in = Objects.requireNonNull(Qwen3OpenAiSdkTest.class.getResourceAsStream(
                "/qwen3/expected/" + name + ".txt"))) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }
}
