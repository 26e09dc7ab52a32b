package io.moeserve.router;

import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.HealthCheckResponseBuilder;
import org.eclipse.microprofile.health.Readiness;

/** Ready when the model is loaded and every expert group has a pod that can take calls. */
@Readiness
@ApplicationScoped
public class RouterReadiness implements HealthCheck {
    @Inject
    ServedModel served;

    @Override
    public HealthCheckResponse call() {
        HealthCheckResponseBuilder b = HealthCheckResponse.named("experts");
        boolean up = served.model() != null;
        for (ExpertGroup g : served.groups()) {
            long ready = g.replicas().stream().filter(r -> r.health == ExpertReplica.Health.READY).count();
            b.withData("group " + g.name, ready + " of " + g.replicas().size() + " pods ready (" + g.hosts.spec() + ")");
            up &= g.hasReadyReplica();
        }
        if (served.groups().isEmpty()) b.withData("experts", "in this process");
        return b.status(up).build();
    }
}
