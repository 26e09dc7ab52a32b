package io.moeserve.gateway;

import io.moeserve.cli.SyntheticModel;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.synthetic.SyntheticCheckpointGenerator;
import io.moeserve.tokenizer.synthetic.SyntheticTokenizerBuilder;
import io.moeserve.tokenizer.synthetic.TokenizerFormat;
import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * Starts a {@link FakeRouter} on a free port with a synthetic checkpoint (a real tokenizer.json and chat template)
 * generated for the run, and points the gateway at both. Tests get the fake through {@link InjectFakeRouter}.
 *
 * <p>The checkpoint is a ChatML model ({@link #MODEL_ID}) unless the init argument {@code format} is
 * {@code harmony}: then it is {@link #HARMONY_MODEL_ID}, gpt-oss's tokenizer and official chat template
 * ({@link TokenizerFormat#harmony()}) with a generation_config.json ending generation at {@code <|return|>},
 * {@code <|endoftext|>} and {@code <|call|>} as gpt-oss's does; the gateway reads no weights, so it has none.
 * With {@code qwen3} it is {@link #QWEN3_MODEL_ID}: the ChatML checkpoint with Qwen3's official chat template as
 * its chat_template.jinja (test resource qwen3/), whose {@code <tool_call>} makes the gateway parse Qwen's format.
 * The ChatML checkpoint is served with moe.gateway.output-parser=none, its output as generated.
 */
public class FakeRouterResource implements QuarkusTestResourceLifecycleManager {
    static final String MODEL_ID = "tiny-moe";
    static final String HARMONY_MODEL_ID = "gpt-oss-tiny";
    static final String QWEN3_MODEL_ID = "qwen3-tiny";
    /** The harmony checkpoint's vocabulary size. */
    static final int HARMONY_VOCAB = 1000;
    static final String API_KEY = "sk-test-1";
    static final String OTHER_API_KEY = "sk-test-2";
    static final int MAX_PROMPT_TOKENS = 900;

    private FakeRouter router;
    private boolean harmony;
    private boolean qwen3;

    @Override
    public void init(Map<String, String> initArgs) {
        String format = initArgs.getOrDefault("format", "chatml");
        if (!format.equals("chatml") && !format.equals("harmony") && !format.equals("qwen3")) {
            throw new IllegalArgumentException("format must be chatml, harmony or qwen3, not " + format);
        }
        harmony = format.equals("harmony");
        qwen3 = format.equals("qwen3");
    }

    @Override
    public Map<String, String> start() {
        try {
            Path root = Files.createTempDirectory("moe-gateway-test");
            Path checkpoint;
            if (harmony) {
                checkpoint = root.resolve(HARMONY_MODEL_ID);
                writeHarmonyCheckpoint(checkpoint);
                router = new FakeRouter(checkpoint, HARMONY_MODEL_ID, HARMONY_VOCAB);
            } else {
                String id = qwen3 ? QWEN3_MODEL_ID : MODEL_ID;
                checkpoint = root.resolve(id);
                var config = SyntheticModel.generate(checkpoint,
                        SyntheticCheckpointGenerator.Spec.tiny(Architecture.MIXTRAL));
                if (qwen3) {
                    try (var template = FakeRouterResource.class.getResourceAsStream("/qwen3/chat_template.jinja")) {
                        Files.write(checkpoint.resolve("chat_template.jinja"), template.readAllBytes());
                    }
                }
                router = new FakeRouter(checkpoint, id, config.vocabSize());
            }
            return Map.of(
                    "moe.model.path", checkpoint.toString(),
                    "quarkus.grpc.clients.router.host", "127.0.0.1",
                    "quarkus.grpc.clients.router.port", Integer.toString(router.port()),
                    // In test mode Quarkus points gRPC clients at its own test server unless told otherwise.
                    "quarkus.grpc.clients.router.test-port", Integer.toString(router.port()),
                    "moe.gateway.api-keys", API_KEY + "," + OTHER_API_KEY,
                    "moe.gateway.request-timeout", "20s",
                    // Below the fake's max_context, so that the prompt limit is seen to be our own; gpt-oss's
                    // prompts are long (its system header, a tool's declaration) in the small vocabulary.
                    "moe.gateway.max-prompt-tokens", Integer.toString(harmony || qwen3 ? FakeRouter.MAX_CONTEXT : MAX_PROMPT_TOKENS),
                    // The ChatML checkpoint's template writes <tool_call>, which auto reads as Qwen's format; its
                    // tests (echo_prompt replies holding the prompt's tool calls among them) check text as generated.
                    "moe.gateway.output-parser", harmony || qwen3 ? "auto" : "none",
                    // Small, so that the body-limit tests need no huge bodies.
                    "quarkus.http.limits.max-body-size", "1M");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** gpt-oss's tokenizer files and generation_config.json, as the hub has them (less the weights). */
    static void writeHarmonyCheckpoint(Path checkpoint) throws IOException {
        TokenizerFormat format = TokenizerFormat.harmony();
        SyntheticTokenizerBuilder.write(checkpoint, HARMONY_VOCAB, format);
        Map<String, Integer> ids = SyntheticTokenizerBuilder.specialTokenIds(HARMONY_VOCAB, format);
        Files.writeString(checkpoint.resolve("generation_config.json"), "{\"bos_token_id\": " + ids.get("<|startoftext|>")
                + ", \"eos_token_id\": [" + ids.get("<|return|>") + ", " + ids.get("<|endoftext|>") + ", "
                + ids.get("<|call|>") + "], \"pad_token_id\": " + ids.get("<|endoftext|>") + "}\n");
    }

    @Override
    public void inject(TestInjector injector) {
        injector.injectIntoFields(router, new TestInjector.AnnotatedAndMatchesType(InjectFakeRouter.class, FakeRouter.class));
    }

    @Override
    public void stop() {
        if (router != null) router.close();
    }
}
