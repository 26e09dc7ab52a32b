package io.moeserve.gateway.router;

import io.grpc.Channel;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import io.moeserve.gateway.GatewaySettings;
import io.moeserve.proto.router.v1.DescribeModelRequest;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.proto.router.v1.ModelDescription;
import io.moeserve.proto.router.v1.RouterServiceGrpc;
import io.moeserve.proto.tls.GrpcTls;
import io.quarkus.grpc.GrpcClient;
import io.smallrye.mutiny.Uni;
import jakarta.annotation.PreDestroy;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/**
 * The gRPC client of router-service (Quarkus client "router"). Generate uses the plain async stub rather than
 * the Mutiny one: the Mutiny stub's Multi does not cancel the gRPC call when it is cancelled (Quarkus'
 * ClientCalls.oneToMany hands the emitter a plain StreamObserver), and a client that goes away must end the
 * router's sequence.
 *
 * <p>With {@code moe.tls.enabled} the channel is built here on the same host, port and message limit, with
 * {@link GrpcTls}'s credentials: Quarkus' client reads its PEM files once, so a renewed certificate would need a
 * restart, where GrpcTls re-reads them.
 */
@ApplicationScoped
public class RouterClient {

    @GrpcClient("router")
    Channel channel;

    @Inject
    GatewaySettings settings;

    @Inject
    GrpcTls tls;

    @ConfigProperty(name = "quarkus.grpc.clients.router.host")
    String host;

    @ConfigProperty(name = "quarkus.grpc.clients.router.port")
    int port;

    @ConfigProperty(name = "quarkus.grpc.clients.router.max-inbound-message-size", defaultValue = "67108864")
    int maxInboundMessageSize;

    private ManagedChannel tlsChannel;

    private volatile RouterServiceGrpc.RouterServiceStub stub;
    private final AtomicReference<Cached> description = new AtomicReference<>();

    private record Cached(ModelDescription value, long atNanos) {}

    private synchronized RouterServiceGrpc.RouterServiceStub newStub() {
        if (stub != null) return stub;
        Channel c = channel;
        if (tls.enabled()) {
            tlsChannel = NettyChannelBuilder.forAddress(host, port, tls.channelCredentials())
                    .maxInboundMessageSize(maxInboundMessageSize)
                    .keepAliveTime(30, TimeUnit.SECONDS)
                    .build();
            c = tlsChannel;
        }
        return stub = RouterServiceGrpc.newStub(c);
    }

    private RouterServiceGrpc.RouterServiceStub stub() {
        RouterServiceGrpc.RouterServiceStub s = stub;
        return s != null ? s : newStub();
    }

    @PreDestroy
    synchronized void close() {
        if (tlsChannel != null) tlsChannel.shutdownNow();
    }

    /** Starts a Generate call; its listener hears the messages and the end. */
    public void generate(GenerateRequest request, Duration timeout, GenerationCall call) {
        stub().withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS).generate(request, call);
        call.started();
    }

    /**
     * The router's model description, reused for moe.gateway.describe-cache-ttl; when the router does not answer,
     * the last answer if there was one, else the failure as an OpenAiException (503 for an unreachable router).
     */
    public Uni<ModelDescription> describe() {
        Cached cached = description.get();
        if (cached != null && System.nanoTime() - cached.atNanos() < settings.describeCacheTtl().toNanos()) {
            return Uni.createFrom().item(cached.value());
        }
        return fetch()
                .onItem().invoke(d -> description.set(new Cached(d, System.nanoTime())))
                .onFailure().recoverWithUni(e -> cached != null
                        ? Uni.createFrom().item(cached.value())
                        : Uni.createFrom().failure(RouterErrors.translate(e)));
    }

    /** {@link #describe()} for a worker thread. */
    public ModelDescription description() {
        return describe().await().atMost(settings.describeTimeout().plusSeconds(1));
    }

    /** A fresh DescribeModel call, for readiness. */
    Uni<ModelDescription> fetch() {
        return Uni.createFrom().emitter(emitter -> stub()
                .withDeadlineAfter(settings.describeTimeout().toMillis(), TimeUnit.MILLISECONDS)
                .describeModel(DescribeModelRequest.getDefaultInstance(), new StreamObserver<>() {
                    @Override
                    public void onNext(ModelDescription value) {
                        emitter.complete(value);
                    }

                    @Override
                    public void onError(Throwable t) {
                        emitter.fail(t);
                    }

                    @Override
                    public void onCompleted() {
                        // the value came with onNext
                    }
                }));
    }
}
