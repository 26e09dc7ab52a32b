package io.moeserve.router;

import io.quarkus.runtime.Quarkus;
import io.quarkus.runtime.annotations.QuarkusMain;
import java.security.Security;

/**
 * The router's entry point: shortens the JVM's DNS cache before anything resolves a name, then starts Quarkus.
 *
 * <p>Why here: the JVM reads its DNS cache policy once, when the resolver is first used (30 s for positive answers
 * by default), and Quarkus resolves names while starting, so setting it later has no effect. Expert pods behind a
 * headless Service come and go; the router re-resolves their name every refresh interval and must see the change.
 */
@QuarkusMain
public class RouterMain {
    /** Seconds a DNS answer is trusted; a refresh interval shorter than this sees changes this late. */
    static final String DNS_TTL_SECONDS = "1";

    public static void main(String... args) {
        if (Security.getProperty("networkaddress.cache.ttl") == null && System.getProperty("sun.net.inetaddr.ttl") == null) {
            Security.setProperty("networkaddress.cache.ttl", DNS_TTL_SECONDS);
        }
        if (System.getProperty("sun.net.inetaddr.negative.ttl") == null) Security.setProperty("networkaddress.cache.negative.ttl", DNS_TTL_SECONDS);
        Quarkus.run(args);
    }
}
