package io.moeserve.gateway;

import io.quarkus.test.junit.QuarkusIntegrationTest;

/** The checks of {@link ChatCompletionsTest}, against the packaged service (quarkus-run.jar). */
@QuarkusIntegrationTest
class ChatCompletionsIT extends ChatCompletionsTest {}
