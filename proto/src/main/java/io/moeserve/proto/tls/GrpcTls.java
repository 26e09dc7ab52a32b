package io.moeserve.proto.tls;

import io.grpc.ChannelCredentials;
import io.grpc.InsecureChannelCredentials;
import io.grpc.TlsChannelCredentials;
import io.grpc.netty.GrpcSslContexts;
import io.grpc.util.AdvancedTlsX509KeyManager;
import io.grpc.util.AdvancedTlsX509TrustManager;
import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import jakarta.annotation.PreDestroy;
import jakarta.inject.Singleton;
import java.io.File;
import java.io.IOException;
import java.security.GeneralSecurityException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.jboss.logging.Logger;

/**
 * The TLS material of this process's gRPC servers and clients ({@link TlsSettings}), loaded once and re-read every
 * reload period.
 *
 * <p>Why not Quarkus' own settings: the separate gRPC server ({@code quarkus.grpc.server.ssl.*}) takes a client-CA
 * only as a password-protected PKCS#12 or JKS store, not the PEM ca.crt a cert-manager Secret holds, and neither it
 * nor the gRPC client ({@code quarkus.grpc.clients.*.ssl.*}) re-reads its files, so a renewed certificate would need a
 * restart; the router's expert channels are built by hand anyway (ExpertReplica). Here grpc-java's advanced-TLS key
 * and trust managers hold the material: the TLS engines consult them on every handshake, and a task of ours swaps in
 * what the files hold once they change (grpc-java's own file watching runs at most once a minute), so renewal needs
 * no restart and drops no connection: those open keep their session.
 *
 * <p>What is verified: that the peer's chain ends at {@link TlsSettings#ca()}, not its host name. The router dials
 * expert pods by the addresses a headless Service resolves to, which no certificate shared by a Deployment's pods
 * names; holding a key certified by the deployment's own CA is the identity. Use a CA for this deployment alone.
 */
@Singleton
public class GrpcTls {
    private static final Logger LOG = Logger.getLogger(GrpcTls.class);
    private final TlsSettings settings;
    private AdvancedTlsX509KeyManager keys;
    private AdvancedTlsX509TrustManager trust;
    private ScheduledExecutorService reloads;
    /** Modification times of the files last loaded (certificate, key, CA). */
    private long certificateTime, keyTime, caTime;

    public GrpcTls(TlsSettings settings) {
        this.settings = settings;
    }

    public boolean enabled() {
        return settings.enabled();
    }

    public boolean mutual() {
        return settings.enabled() && settings.mutual();
    }

    /** A client's credentials: TLS verifying the server against the CA and offering this service's certificate. */
    public ChannelCredentials channelCredentials() {
        if (!settings.enabled()) return InsecureChannelCredentials.create();
        load();
        return TlsChannelCredentials.newBuilder().keyManager(keys).trustManager(trust).build();
    }

    /** The gRPC server's TLS context (HTTP/2 over ALPN), requiring a client certificate when {@link #mutual()}. */
    public SslContext serverContext() {
        if (!settings.enabled()) throw new IllegalStateException("moe.tls.enabled is false");
        load();
        try {
            return GrpcSslContexts.configure(SslContextBuilder.forServer(keys))
                    .trustManager(trust)
                    .clientAuth(settings.mutual() ? ClientAuth.REQUIRE : ClientAuth.NONE)
                    .build();
        } catch (IOException e) {
            throw new IllegalStateException("cannot build the gRPC server's TLS context: " + e.getMessage(), e);
        }
    }

    /** Reads the files the first time; a missing or unreadable one fails the start, naming the setting. */
    private synchronized void load() {
        if (keys != null) return;
        try {
            AdvancedTlsX509KeyManager k = new AdvancedTlsX509KeyManager();
            AdvancedTlsX509TrustManager t = AdvancedTlsX509TrustManager.newBuilder()
                    .setVerification(AdvancedTlsX509TrustManager.Verification.CERTIFICATE_ONLY_VERIFICATION).build();
            keys = k;
            trust = t;
            reload(true);
        } catch (IOException | GeneralSecurityException | RuntimeException e) {
            keys = null;
            trust = null;
            throw new IllegalStateException("moe.tls.enabled=true but moe.tls.certificate=" + settings.certificate() + ", moe.tls.key="
                    + settings.key() + " and moe.tls.ca=" + settings.ca() + " do not load: " + e, e);
        }
        // grpc-java's own file watching re-reads at most once a minute; this honours any reload period
        long periodMs = Math.max(1, settings.reloadPeriod().toMillis());
        reloads = Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform().name("tls-reload").daemon().unstarted(r));
        reloads.scheduleWithFixedDelay(this::reloadChanged, periodMs, periodMs, TimeUnit.MILLISECONDS);
    }

    private void reloadChanged() {
        try {
            reload(false);
        } catch (IOException | GeneralSecurityException | RuntimeException e) {
            LOG.warnf("moe.tls: keeping the previous certificate, the changed files do not load: %s", e.toString());
        }
    }

    /**
     * Loads what changed. The certificate and key are taken only once both changed since the last load: a Secret
     * volume swaps its files together, and a half-written pair would fail every handshake until the next period.
     */
    private synchronized void reload(boolean first) throws IOException, GeneralSecurityException {
        File certificate = settings.certificate().toFile(), key = settings.key().toFile(), ca = settings.ca().toFile();
        long c = certificate.lastModified(), k = key.lastModified(), a = ca.lastModified();
        if (first || (c != certificateTime && k != keyTime)) {
            keys.updateIdentityCredentials(certificate, key);
            certificateTime = c;
            keyTime = k;
            if (!first) LOG.infof("moe.tls: reloaded %s and %s", certificate, key);
        }
        if (first || a != caTime) {
            trust.updateTrustCredentials(ca);
            caTime = a;
            if (!first) LOG.infof("moe.tls: reloaded %s", ca);
        }
    }

    @PreDestroy
    synchronized void close() {
        if (reloads != null) reloads.shutdownNow();
    }
}
