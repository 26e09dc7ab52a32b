package io.moeserve.gateway.router;

import io.moeserve.gateway.ServedModel;
import io.smallrye.health.api.AsyncHealthCheck;
import io.smallrye.mutiny.Uni;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/** Ready when a router answers DescribeModel: without one no request can be served. */
@Readiness
@ApplicationScoped
public class RouterReadinessCheck implements AsyncHealthCheck {

    @Inject
    RouterClient router;

    @Inject
    ServedModel model;

    @Override
    public Uni<HealthCheckResponse> call() {
        return router.fetch()
                .map(d -> HealthCheckResponse.named("router").up()
                        .withData("model", d.getModelId())
                        .withData("max_context", d.getMaxContext())
                        .withData("served_as", model.id())
                        .withData("routers", router.summary())
                        .build())
                .onFailure().recoverWithItem(e -> HealthCheckResponse.named("router").down()
                        .withData("error", RouterErrors.translate(e).getMessage())
                        .withData("routers", router.summary())
                        .build());
    }
}
