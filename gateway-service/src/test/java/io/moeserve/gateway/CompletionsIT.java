package io.moeserve.gateway;

import io.quarkus.test.junit.QuarkusIntegrationTest;

/** The checks of {@link CompletionsTest}, against the packaged service (quarkus-run.jar). */
@QuarkusIntegrationTest
class CompletionsIT extends CompletionsTest {}
