package io.moeserve.gateway;

import io.moeserve.cli.SyntheticModel;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.synthetic.SyntheticCheckpointGenerator;
import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * Starts a {@link FakeRouter} on a free port with a synthetic checkpoint (a real tokenizer.json and chat template)
 * generated for the run, and points the gateway at both. Tests get the fake through {@link InjectFakeRouter}.
 */
public class FakeRouterResource implements QuarkusTestResourceLifecycleManager {
    static final String MODEL_ID = "tiny-moe";
    static final String API_KEY = "sk-test-1";
    static final String OTHER_API_KEY = "sk-test-2";
    static final int MAX_PROMPT_TOKENS = 900;

    private FakeRouter router;
    private Path root;

    @Override
    public Map<String, String> start() {
        try {
            root = Files.createTempDirectory("moe-gateway-test");
            Path checkpoint = root.resolve(MODEL_ID);
            var config = SyntheticModel.generate(checkpoint,
                    SyntheticCheckpointGenerator.Spec.tiny(Architecture.MIXTRAL));
            router = new FakeRouter(checkpoint, MODEL_ID, config.vocabSize());
            return Map.of(
                    "moe.model.path", checkpoint.toString(),
                    "quarkus.grpc.clients.router.host", "127.0.0.1",
                    "quarkus.grpc.clients.router.port", Integer.toString(router.port()),
                    // In test mode Quarkus points gRPC clients at its own test server unless told otherwise.
                    "quarkus.grpc.clients.router.test-port", Integer.toString(router.port()),
                    "moe.gateway.api-keys", API_KEY + "," + OTHER_API_KEY,
                    "moe.gateway.request-timeout", "20s",
                    // Below the fake's max_context, so that the prompt limit is seen to be our own.
                    "moe.gateway.max-prompt-tokens", Integer.toString(MAX_PROMPT_TOKENS),
                    // Small, so that the body-limit tests need no huge bodies.
                    "quarkus.http.limits.max-body-size", "1M");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
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
