package io.moeserve.runtime.kernel;

import java.util.Objects;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * A fixed pool of daemon threads that runs one index range at a time, split into contiguous chunks.
 *
 * <p>Design. The model calls {@link #forRange} thousands of times per token, so a call must cost about a
 * microsecond and allocate nothing; an executor (futures, queues, lambdas) fails both. Instead the pool keeps one
 * slot per worker: the caller writes the task into plain fields, then hands each needed worker a new ticket (a
 * volatile int, the generation of this call) and runs chunk 0 itself. A worker spins on its ticket for
 * {@code spinNanos} (back-to-back calls in a forward pass find it awake), then parks; the caller unparks only
 * workers that announced they parked. Both sides use the same store-then-load handshake (Dekker): the worker sets
 * {@code parked} and re-reads its ticket, the caller writes the ticket and reads {@code parked}, so with volatile
 * (sequentially consistent) accesses one of them always sees the other and no wake-up is lost. Completion is an
 * atomic countdown; the caller spins on it, then parks, and the worker that brings it to zero unparks the caller.
 *
 * <p>Staying awake. Waking a parked thread costs tens to hundreds of microseconds on the VMs we run on, more than
 * many of a decode step's products take, and a step's serial parts (attention, the gate, the SwiGLU) leave gaps
 * longer than the spin. So while the caller says more calls are coming ({@link #stayAwake}, a forward step), idle
 * workers spin without a time limit; otherwise they park after {@code spinNanos}. When the caller itself waits on
 * another thread (a step waiting for its expert pods) the workers park meanwhile, and whoever ends that wait can
 * {@link #wake} them as it wakes the caller, so the two wake-ups overlap instead of the workers' coming after the
 * caller's, at the caller's first call (BENCHMARKS.md, issue 16).
 *
 * <p>Chunk {@code p} of {@code P = min(threads, n)} is {@code [n·p/P, n·(p+1)/P)}: contiguous, non-empty, and
 * the same for the same (n, threads), so callers that want one chunk per thread (per-thread scratch) can call
 * {@code forRange(threads(), ...)} and treat the index as a slot number.
 *
 * <p>One caller at a time. The pool is meant to be driven by one thread (the model's forward pass). A second
 * caller that arrives while a call is in flight, or a task that calls {@code forRange} from inside a chunk, is
 * detected with one compare-and-set and runs its whole range on its own thread: correct, never deadlocked, just
 * not parallel. An exception thrown by any chunk is rethrown to the caller after every chunk has finished (the
 * caller's own first, others attached as suppressed).
 */
public final class Parallel implements AutoCloseable {

    /** How long an idle worker or a waiting caller spins before parking; decode's gaps between calls are shorter. */
    public static final long DEFAULT_SPIN_NANOS = 20_000;

    private static final AtomicInteger POOL_IDS = new AtomicInteger();

    private final int threads;
    private final long spinNanos;
    private final Worker[] workers;
    private final boolean closable;
    private final AtomicBoolean busy = new AtomicBoolean();
    private final AtomicInteger pending = new AtomicInteger();
    private volatile Thread waitingCaller;
    private volatile boolean closed;
    private volatile boolean awake;

    // The call in flight; written by the caller before the tickets, so the ticket's volatile write publishes them.
    private RangeTask task;
    private int size;
    private int active;
    private int generation;

    /** A pool with {@code threads} participants (the calling thread counts as one) and the default spin. */
    public Parallel(int threads) {
        this(threads, DEFAULT_SPIN_NANOS);
    }

    /** A pool with {@code threads} participants; idle threads spin {@code spinNanos} before parking. */
    public Parallel(int threads, long spinNanos) {
        this(threads, spinNanos, true);
    }

    private Parallel(int threads, long spinNanos, boolean closable) {
        if (threads < 1) throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        if (spinNanos < 0) throw new IllegalArgumentException("spinNanos must not be negative, got " + spinNanos);
        this.threads = threads;
        this.spinNanos = spinNanos;
        this.closable = closable;
        this.workers = new Worker[threads - 1];
        int poolId = POOL_IDS.incrementAndGet();
        for (int i = 0; i < workers.length; i++) {
            workers[i] = new Worker(i + 1, "moe-parallel-" + poolId + "-" + (i + 1));
            workers[i].start();
        }
    }

    /** The process-wide pool, sized by system property {@code moe.threads}, else by the available processors. */
    public static Parallel shared() {
        return Shared.INSTANCE;
    }

    /**
     * While {@code on}, idle workers spin instead of parking, so the next call finds them running: set it for the
     * length of a burst of calls (a forward step), and clear it when the caller will wait on something else. Costs
     * the idle workers' CPU for that long.
     */
    public void stayAwake(boolean on) {
        awake = on;
    }

    /**
     * Unparks parked workers and keeps them spinning as {@link #stayAwake stayAwake(true)} does, so that the next call
     * finds them running. For a thread other than the caller that knows a burst of calls is about to start (the
     * transport thread that delivers a layer's last expert answer); cheap when no worker is parked.
     */
    public void wake() {
        awake = true;
        // Dekker with the worker: it writes parked, then reads awake; this writes awake, then reads parked.
        for (Worker w : workers) {
            if (w.parked) LockSupport.unpark(w);
        }
    }

    /** Workers parked now (tests). */
    int parkedWorkers() {
        int n = 0;
        for (Worker w : workers) {
            if (w.parked) n++;
        }
        return n;
    }

    /** Participants in a call, the calling thread included. */
    public int threads() {
        return threads;
    }

    /**
     * Runs {@code task} over [0, n) split into {@code min(threads, n)} contiguous chunks, one on the calling thread
     * and the rest on workers, and returns when all are done. Does nothing for {@code n <= 0}.
     */
    public void forRange(int n, RangeTask task) {
        Objects.requireNonNull(task, "task");
        if (n <= 0) return;
        if (!busy.compareAndSet(false, true)) {
            // Concurrent or nested caller: the pool is taken, so do the whole range here rather than wait or fail.
            task.run(0, n);
            return;
        }
        try {
            if (closed) throw new IllegalStateException("this Parallel pool is closed");
            int participants = Math.min(threads, n);
            if (participants == 1) {
                task.run(0, n);
                return;
            }
            dispatch(n, participants, task);
        } finally {
            busy.set(false);
        }
    }

    private void dispatch(int n, int participants, RangeTask task) {
        this.task = task;
        this.size = n;
        this.active = participants;
        pending.set(participants - 1);
        int ticket = ++generation;
        for (int i = 0; i < participants - 1; i++) {
            Worker w = workers[i];
            w.ticket = ticket;
            if (w.parked) LockSupport.unpark(w);
        }
        Throwable failure = null;
        try {
            task.run(0, chunkStart(n, participants, 1));
        } catch (Throwable t) {
            failure = t;
        }
        awaitWorkers();
        this.task = null;
        for (int i = 0; i < participants - 1; i++) {
            Throwable e = workers[i].error;
            if (e == null) continue;
            workers[i].error = null;
            if (failure == null) failure = e;
            else failure.addSuppressed(e);
        }
        if (failure != null) rethrow(failure);
    }

    private void awaitWorkers() {
        long deadline = 0;
        for (int spins = 0; pending.get() != 0; spins++) {
            if ((spins & 63) == 0) {
                long now = System.nanoTime();
                if (deadline == 0) deadline = now + spinNanos;
                else if (now - deadline > 0) break;
            }
            Thread.onSpinWait();
        }
        if (pending.get() == 0) return;
        waitingCaller = Thread.currentThread();
        while (pending.get() != 0) LockSupport.park(this);
        waitingCaller = null;
    }

    /** Stops the workers; later calls fail. Idempotent; the shared pool cannot be closed. */
    @Override
    public void close() {
        if (!closable) throw new UnsupportedOperationException("the shared pool cannot be closed");
        if (!busy.compareAndSet(false, true)) throw new IllegalStateException("close() while a call is in flight");
        try {
            if (closed) return;
            closed = true;
            for (Worker w : workers) {
                w.ticket = w.ticket + 1;
                LockSupport.unpark(w);
            }
        } finally {
            busy.set(false);
        }
    }

    private static int chunkStart(int n, int participants, int p) {
        return (int) ((long) n * p / participants);
    }

    private static void rethrow(Throwable t) {
        if (t instanceof RuntimeException r) throw r;
        if (t instanceof Error e) throw e;
        // A checked exception smuggled past RangeTask's signature.
        throw new IllegalStateException("a parallel chunk failed", t);
    }

    /** One pool thread; participant p runs chunk p of each call it receives a ticket for. */
    private final class Worker extends Thread {
        private final int participant;
        volatile int ticket;
        volatile boolean parked;
        Throwable error;

        Worker(int participant, String name) {
            super(name);
            this.participant = participant;
            setDaemon(true);
        }

        @Override
        public void run() {
            int seen = 0;
            while (true) {
                seen = awaitTicket(seen);
                if (closed) return;
                int n = size;
                int participants = active;
                try {
                    task.run(chunkStart(n, participants, participant), chunkStart(n, participants, participant + 1));
                } catch (Throwable t) {
                    error = t;
                }
                if (pending.decrementAndGet() == 0) {
                    Thread caller = waitingCaller;
                    if (caller != null) LockSupport.unpark(caller);
                }
            }
        }

        private int awaitTicket(int seen) {
            while (true) {
                long deadline = 0;
                for (int spins = 0; ; spins++) {
                    int t = ticket;
                    if (t != seen) return t;
                    if ((spins & 63) == 0) {
                        long now = System.nanoTime();
                        if (deadline == 0 || awake) deadline = now + spinNanos;
                        else if (now - deadline > 0) break;
                    }
                    Thread.onSpinWait();
                }
                parked = true;
                int t;
                while ((t = ticket) == seen && !awake) LockSupport.park(this);
                parked = false;
                if (t != seen) return t;
                // wake(): spin again, ready for the call that is coming
            }
        }
    }

    /** Lazy holder, so that merely loading this class starts no threads. */
    private static final class Shared {
        static final Parallel INSTANCE = new Parallel(threadsFromProperty(), DEFAULT_SPIN_NANOS, false);

        private static int threadsFromProperty() {
            String value = System.getProperty("moe.threads");
            if (value == null || value.isBlank()) return Runtime.getRuntime().availableProcessors();
            try {
                int t = Integer.parseInt(value.trim());
                if (t >= 1) return t;
            } catch (NumberFormatException e) {
                // fall through to the message below
            }
            throw new IllegalArgumentException("system property moe.threads must be a positive integer, got '"
                    + value + "'");
        }
    }
}
