package io.moeserve.gateway;

import io.quarkus.test.junit.QuarkusIntegrationTest;

/** The checks of {@link ModelsAndKeysTest}, against the packaged service (quarkus-run.jar). */
@QuarkusIntegrationTest
class ModelsAndKeysIT extends ModelsAndKeysTest {}
