package io.moeserve.gateway;

import io.moeserve.runtime.config.ConfigParser;
import java.nio.file.Path;

/**
 * Runs the {@link FakeRouter} on its own, to try the gateway by hand without router-service (README, "Trying it
 * without a router"): {@code FakeRouterMain <checkpoint dir> [port, default 9081]}.
 */
public final class FakeRouterMain {
    private FakeRouterMain() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: FakeRouterMain <checkpoint dir> [port]");
            System.exit(2);
        }
        Path checkpoint = Path.of(args[0]).toAbsolutePath().normalize();
        int port = args.length > 1 ? Integer.parseInt(args[1]) : 9081;
        int vocab = ConfigParser.load(checkpoint).vocabSize();
        try (FakeRouter router = new FakeRouter(checkpoint, checkpoint.getFileName().toString(), vocab, port)) {
            System.err.println("fake router for '" + checkpoint.getFileName() + "' on 127.0.0.1:" + router.port());
            Thread.currentThread().join();
        }
    }
}
