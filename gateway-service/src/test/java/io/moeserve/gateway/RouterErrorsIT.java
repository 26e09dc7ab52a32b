package io.moeserve.gateway;

import io.quarkus.test.junit.QuarkusIntegrationTest;

/** The checks of {@link RouterErrorsTest}, against the packaged service (quarkus-run.jar). */
@QuarkusIntegrationTest
class RouterErrorsIT extends RouterErrorsTest {}
