package io.moeserve.gateway;

import io.quarkus.test.junit.QuarkusIntegrationTest;

/** The checks of {@link OpenAiSdkTest}, against the packaged service (quarkus-run.jar). */
@QuarkusIntegrationTest
class OpenAiSdkIT extends OpenAiSdkTest {}
