package io.moeserve.router;

import jakarta.inject.Inject;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import java.net.InetAddress;
import java.net.UnknownHostException;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/** Routing counts per (layer, expert) as JSON, for placement planning (format in docs/architecture.md). */
@Path("/v1/routing-stats")
public class RoutingStatsResource {
    @Inject
    ServedModel served;

    @ConfigProperty(name = "quarkus.grpc.server.port", defaultValue = "9000")
    int grpcPort;

    private volatile String router;

    @GET
    @Produces(MediaType.APPLICATION_JSON)
    public RoutingStatistics.Snapshot get() {
        return served.statistics().snapshot(served.modelId(), served.routingTableVersion(), router());
    }

    /** This router among several: its host name (the pod's name in Kubernetes) and gRPC port. */
    private String router() {
        String r = router;
        if (r == null) {
            String host = System.getenv("HOSTNAME");
            if (host == null || host.isBlank()) {
                try {
                    host = InetAddress.getLocalHost().getHostName();
                } catch (UnknownHostException e) {
                    host = "localhost";
                }
            }
            router = r = host + ":" + grpcPort;
        }
        return r;
    }
}
