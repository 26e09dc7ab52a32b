package io.moeserve.gateway;

import io.quarkus.test.junit.QuarkusIntegrationTest;

/** The checks of {@link NoRouterTest}, against the packaged service (quarkus-run.jar). */
@QuarkusIntegrationTest
class NoRouterIT extends NoRouterTest {}
