package io.moeserve.router;

import jakarta.inject.Inject;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;

/** Routing counts per (layer, expert) as JSON, for placement planning (format in docs/architecture.md). */
@Path("/v1/routing-stats")
public class RoutingStatsResource {
    @Inject
    ServedModel served;

    @GET
    @Produces(MediaType.APPLICATION_JSON)
    public RoutingStatistics.Snapshot get() {
        return served.statistics().snapshot(served.modelId(), served.routingTableVersion());
    }
}
