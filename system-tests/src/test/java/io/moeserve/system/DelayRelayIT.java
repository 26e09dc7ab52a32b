package io.moeserve.system;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.Arrays;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The delay relay adds the one-way delay it is given, never less and not much more, and forwards bytes intact:
 * a one-byte ping-pong through it against the same ping-pong straight to an echo server, and a few MiB with jitter.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class DelayRelayIT {
    private static final int ROUND_TRIPS = 400;
    private static ServerSocket echo;

    @BeforeAll
    static void startEcho() throws IOException {
        echo = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Thread.ofPlatform().daemon().start(() -> {
            while (true) {
                Socket s;
                try {
                    s = echo.accept();
                    s.setTcpNoDelay(true);
                } catch (IOException e) {
                    return;
                }
                Thread.ofPlatform().daemon().start(() -> {
                    try (s; InputStream in = s.getInputStream(); OutputStream out = s.getOutputStream()) {
                        byte[] b = new byte[64 << 10];
                        int n;
                        while ((n = in.read(b)) > 0) out.write(b, 0, n);
                    } catch (IOException e) {
                        // the client went away
                    }
                });
            }
        });
    }

    @AfterAll
    static void stopEcho() throws IOException {
        echo.close();
    }

    private static InetSocketAddress echoAddress() {
        return new InetSocketAddress(InetAddress.getLoopbackAddress(), echo.getLocalPort());
    }

    /** One-byte round trips to {@code port}, in ns, sorted; after as many unmeasured ones to warm up. */
    private static long[] pingPong(int port) throws IOException {
        try (Socket s = new Socket(InetAddress.getLoopbackAddress(), port)) {
            s.setTcpNoDelay(true);
            InputStream in = s.getInputStream();
            OutputStream out = s.getOutputStream();
            long[] rtt = new long[ROUND_TRIPS];
            for (int i = -ROUND_TRIPS / 4; i < ROUND_TRIPS; i++) {
                long began = System.nanoTime();
                out.write(i & 0x7f);
                out.flush();
                int b = in.read();
                long took = System.nanoTime() - began;
                if (b != (i & 0x7f)) throw new IOException("echoed " + b + " for " + (i & 0x7f));
                if (i >= 0) rtt[i] = took;
            }
            Arrays.sort(rtt);
            return rtt;
        }
    }

    @Test
    void addsTheConfiguredDelayBothWays() throws IOException {
        long[] direct = pingPong(echo.getLocalPort());
        long directMedian = direct[ROUND_TRIPS / 2];
        System.out.printf(Locale.ROOT, "direct: round trip p50 %.1f µs, p99 %.1f µs%n", directMedian / 1e3, direct[ROUND_TRIPS * 99 / 100] / 1e3);
        for (long delayMicros : new long[] {0, 100, 250, 1000}) {
            long[] rtt;
            try (DelayRelay relay = new DelayRelay(echoAddress(), delayMicros, 0)) {
                rtt = pingPong(relay.port());
            }
            long added = rtt[ROUND_TRIPS / 2] - directMedian;
            System.out.printf(Locale.ROOT, "one-way delay %d µs: round trip min %.1f / p50 %.1f / p99 %.1f µs, added at the median %.1f µs"
                            + " (%.1f µs one way)%n", delayMicros, rtt[0] / 1e3, rtt[ROUND_TRIPS / 2] / 1e3, rtt[ROUND_TRIPS * 99 / 100] / 1e3,
                    added / 1e3, added / 2e3);
            // Never early: every chunk waits its delay in each direction, whatever the machine's load.
            assertTrue(rtt[0] >= 2 * delayMicros * 1000, "a round trip of " + rtt[0] + " ns beat twice the delay " + delayMicros + " µs");
            // Not much late: at the median, the two hand-offs and the wake-ups of a shared, busy machine cost well under
            // a millisecond; a relay that slept with millisecond resolution would miss this at 100 and 250 µs.
            long slack = TimeUnit.MICROSECONDS.toNanos(800);
            assertTrue(added <= 2 * delayMicros * 1000 + slack,
                    "one-way delay " + delayMicros + " µs added " + added / 1e3 + " µs to the median round trip");
        }
    }

    @Test
    void forwardsBytesIntactWithJitter() throws Exception {
        byte[] sent = new byte[4 << 20];
        new Random(42).nextBytes(sent);
        byte[] received = new byte[sent.length];
        try (DelayRelay relay = new DelayRelay(echoAddress(), 50, 200);
             Socket s = new Socket(InetAddress.getLoopbackAddress(), relay.port())) {
            OutputStream out = s.getOutputStream();
            // Writes in uneven pieces from another thread while this one reads, so chunks of every size are in flight.
            CompletableFuture<Void> writer = CompletableFuture.runAsync(() -> {
                try {
                    Random sizes = new Random(7);
                    for (int at = 0; at < sent.length; ) {
                        int n = Math.min(sent.length - at, 1 + sizes.nextInt(100_000));
                        out.write(sent, at, n);
                        at += n;
                    }
                    out.flush();
                    s.shutdownOutput();
                } catch (IOException e) {
                    throw new RuntimeException(e);
                }
            });
            InputStream in = s.getInputStream();
            int at = 0;
            int n;
            while (at < received.length && (n = in.read(received, at, received.length - at)) > 0) at += n;
            writer.get(60, TimeUnit.SECONDS);
            // The echo server closes once our half-close has gone through the relay and back: nothing extra arrives.
            assertTrue(in.read() < 0, "the relay sent bytes beyond those written");
        }
        assertArrayEquals(sent, received);
    }
}
