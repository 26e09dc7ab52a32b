package io.moeserve.proto.tls;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.nio.file.Path;
import java.time.Duration;

/**
 * TLS on the internal gRPC hops (gateway → router, router → expert pods), the {@code moe.tls.*} keys every service
 * shares. The three files are what a cert-manager Certificate's Secret holds (tls.crt, tls.key, ca.crt); the chart
 * mounts that Secret at /etc/moe-serve/tls, the defaults here.
 */
@ConfigMapping(prefix = "moe.tls")
public interface TlsSettings {
    /** Off: plaintext gRPC, as before. On: gRPC servers speak only TLS and clients verify the server's certificate. */
    @WithDefault("false")
    boolean enabled();

    /** This service's certificate chain (PEM), which it shows as a server and, as a client, to a mutual-TLS server. */
    @WithDefault("/etc/moe-serve/tls/tls.crt")
    Path certificate();

    /** The private key of {@link #certificate()}: PEM, PKCS#8 (cert-manager: {@code privateKey.encoding: PKCS8}), RSA or EC. */
    @WithDefault("/etc/moe-serve/tls/tls.key")
    Path key();

    /** The certificate authorities (PEM) a peer's certificate must chain to. */
    @WithDefault("/etc/moe-serve/tls/ca.crt")
    Path ca();

    /** gRPC servers also require a client certificate that chains to {@link #ca()}: mutual TLS. */
    @WithDefault("false")
    boolean mutual();

    /** How often the three files are re-read; a renewed certificate serves new connections from then on. */
    @WithDefault("1m")
    Duration reloadPeriod();
}
