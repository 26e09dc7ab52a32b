package io.moeserve.gateway;

import io.quarkus.test.junit.QuarkusIntegrationTest;

/** The checks of {@link BadRequestsTest}, against the packaged service (quarkus-run.jar). */
@QuarkusIntegrationTest
class BadRequestsIT extends BadRequestsTest {}
