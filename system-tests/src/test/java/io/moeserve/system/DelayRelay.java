package io.moeserve.system;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * A network you can dial, for benchmarks only: a TCP relay on loopback that forwards bytes both ways between its
 * clients and one target, and holds back every chunk it reads for a fixed one-way delay, plus optional jitter. The
 * kernels of these machines have no netem qdisc, so a delay between the router and its expert pods is made here.
 *
 * <p>Design. Each direction of each connection has a reader thread and a writer thread joined by a FIFO queue. The
 * reader copies each chunk it reads, stamps it with the time it is due ({@code read time + delay + jitter}, never
 * before the chunk ahead of it, so that jitter cannot reorder a byte stream), and queues it. The writer takes the
 * head, parks until shortly before it is due and spins the rest of the way: a parked thread wakes 50–100 µs late on
 * a busy machine, which at a 100 µs delay would be the delay itself, while spinning the whole wait would take a
 * core away from the services being measured. Threads are platform threads: a virtual thread's wake-up goes
 * through its carrier pool and adds a wake-up of its own. A delay of zero forwards at once, through the same
 * queue, so the relay's own cost (one thread hand-off per chunk and direction) can be measured apart from the delay.
 */
final class DelayRelay implements AutoCloseable {
    /** How long before a chunk is due the writer stops parking and spins; a parked wake-up is rarely later. */
    private static final long SPIN_NANOS = TimeUnit.MICROSECONDS.toNanos(120);
    private static final int CHUNK = 64 << 10;

    private final ServerSocket server;
    private final InetSocketAddress target;
    private final long delayNanos;
    private final long jitterNanos;
    private final List<Socket> sockets = new CopyOnWriteArrayList<>();
    private volatile boolean closed;

    /**
     * Listens on an ephemeral loopback port and relays every connection to {@code target}, each chunk delayed by
     * {@code delayMicros} one way, plus a uniform jitter of 0 to {@code jitterMicros}.
     */
    DelayRelay(InetSocketAddress target, long delayMicros, long jitterMicros) throws IOException {
        if (delayMicros < 0 || jitterMicros < 0) throw new IllegalArgumentException("delay and jitter must not be negative");
        this.target = target;
        this.delayNanos = TimeUnit.MICROSECONDS.toNanos(delayMicros);
        this.jitterNanos = TimeUnit.MICROSECONDS.toNanos(jitterMicros);
        this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Thread.ofPlatform().daemon().name("relay-accept-" + server.getLocalPort()).start(this::accept);
    }

    /** The port the relay listens on: dial this instead of the target. */
    int port() {
        return server.getLocalPort();
    }

    private void accept() {
        while (!closed) {
            Socket client;
            try {
                client = server.accept();
            } catch (IOException e) {
                return; // closed
            }
            try {
                Socket upstream = new Socket();
                upstream.connect(target, 5000);
                for (Socket s : new Socket[] {client, upstream}) {
                    s.setTcpNoDelay(true);
                    sockets.add(s);
                }
                direction(client, upstream, "up");
                direction(upstream, client, "down");
            } catch (IOException e) {
                closeQuietly(client);
            }
        }
    }

    /** One direction: a reader that stamps and queues chunks, a writer that sends each when it is due. */
    private void direction(Socket from, Socket to, String name) throws IOException {
        LinkedBlockingQueue<Chunk> queue = new LinkedBlockingQueue<>();
        InputStream in = from.getInputStream();
        OutputStream out = to.getOutputStream();
        String suffix = name + "-" + from.getPort() + "-" + to.getPort();
        Thread.ofPlatform().daemon().name("relay-read-" + suffix).start(() -> {
            Random random = new Random(from.getPort());
            byte[] buffer = new byte[CHUNK];
            long lastDue = 0;
            try {
                while (true) {
                    int n = in.read(buffer);
                    long now = System.nanoTime();
                    if (n < 0) break;
                    long due = now + delayNanos + (jitterNanos == 0 ? 0 : (long) (random.nextDouble() * jitterNanos));
                    // Never before the chunk ahead: jitter must not reorder the stream (and nanoTime may be equal).
                    lastDue = Math.max(due, lastDue);
                    byte[] copy = new byte[n];
                    System.arraycopy(buffer, 0, copy, 0, n);
                    queue.add(new Chunk(copy, lastDue));
                }
            } catch (IOException e) {
                // the connection broke or the relay closed: the writer ends the other side
            }
            queue.add(Chunk.END);
        });
        Thread.ofPlatform().daemon().name("relay-write-" + suffix).start(() -> {
            try {
                while (true) {
                    Chunk c = queue.take();
                    if (c == Chunk.END) {
                        to.shutdownOutput();
                        return;
                    }
                    waitUntil(c.due);
                    out.write(c.bytes);
                    out.flush();
                }
            } catch (IOException | InterruptedException e) {
                closeQuietly(from);
                closeQuietly(to);
            }
        });
    }

    /** Parks until {@link #SPIN_NANOS} before {@code due}, then spins: µs-precise without holding a core throughout. */
    static void waitUntil(long due) {
        long left;
        while ((left = due - System.nanoTime()) > SPIN_NANOS) LockSupport.parkNanos(left - SPIN_NANOS);
        while (due - System.nanoTime() > 0) Thread.onSpinWait();
    }

    private record Chunk(byte[] bytes, long due) {
        static final Chunk END = new Chunk(new byte[0], 0);
    }

    private static void closeQuietly(Socket s) {
        try {
            s.close();
        } catch (IOException e) {
            // already closed
        }
    }

    @Override
    public void close() {
        closed = true;
        try {
            server.close();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } finally {
            sockets.forEach(DelayRelay::closeQuietly);
        }
    }
}
