package io.moeserve.proto.tls;

import io.quarkus.arc.Unremovable;
import io.quarkus.grpc.api.ServerBuilderCustomizer;
import io.quarkus.grpc.runtime.config.GrpcServerConfiguration;
import io.vertx.grpc.VertxServerBuilder;
import jakarta.inject.Singleton;

/**
 * Puts {@link GrpcTls}'s context on the router's and expert pods' gRPC server (Quarkus' separate server, which
 * both services run). Quarkus' own TLS setup stays off ({@code quarkus.grpc.server.plain-text} keeps its default):
 * it only acts on the server's Vert.x options, and with those saying plaintext the server uses the Netty context
 * set here as it is.
 */
@Singleton
@Unremovable
public class GrpcTlsServer implements ServerBuilderCustomizer<VertxServerBuilder> {
    private final GrpcTls tls;

    public GrpcTlsServer(GrpcTls tls) {
        this.tls = tls;
    }

    @Override
    public void customize(GrpcServerConfiguration config, VertxServerBuilder builder) {
        if (tls.enabled()) builder.nettyBuilder().sslContext(tls.serverContext());
    }
}
