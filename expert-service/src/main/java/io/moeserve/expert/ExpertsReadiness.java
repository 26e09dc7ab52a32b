package io.moeserve.expert;

import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/** Ready only once the hosted experts are loaded, and no longer once draining. */
@Readiness
@ApplicationScoped
public class ExpertsReadiness implements HealthCheck {
    @Inject
    ExpertPod pod;

    @Override
    public HealthCheckResponse call() {
        return HealthCheckResponse.named("experts").status(pod.state() == ExpertPod.State.SERVING)
                .withData("state", pod.state().name().toLowerCase())
                .withData("hosts", pod.settings().hosts())
                .withData("group", pod.settings().group())
                .build();
    }
}
