package io.moeserve.router;

import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moeserve.runtime.expert.ExpertUnavailableException;
import io.moeserve.runtime.generate.GenerationLoop;
import io.moeserve.runtime.generate.Sequence;
import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.KvCacheFullException;
import io.moeserve.runtime.model.MoeModel;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.function.LongSupplier;
import org.jboss.logging.Logger;

/**
 * Continuous batching in the router: one thread runs the {@link GenerationLoop} over every sequence in flight,
 * admitting arrivals between steps and ending the sequences that are cancelled, expired or hit by a fault.
 *
 * <p>Design. The loop builds each step (decode tokens first, then prompt chunks) and streams the tokens through
 * each {@link RouterSequence}; this class decides who runs. Admission is first come, first served, by what a
 * sequence's prompt takes now, not by what it might grow to: it is admitted when the blocks of its prompt, and those
 * the sequences still prefilling have yet to take, leave a watermark of the pool free (vLLM's rule; the watermark
 * keeps a little room for the running sequences' next blocks). A chat without max_tokens asks for the whole context,
 * and reserving that up front filled the cache with a handful of requests while it stood mostly empty. Blocks are
 * taken as sequences grow; when the pool runs dry the loop preempts the youngest running sequences (recompute, see
 * {@link GenerationLoop}), and they go back to the front of the waiting queue, in admission order, keeping the
 * tokens already streamed, their sampler and their constraint, so no request fails for lack of cache and a
 * preempted one streams what it would have streamed unpreempted. The oldest sequence always progresses; one that
 * could outgrow the whole cache alone is refused at the door ({@link GenerateRequests}, OUT_OF_RANGE). Requests
 * that do not fit wait in a bounded queue; when the queue is full a request is refused at once with
 * RESOURCE_EXHAUSTED and a retry hint. Cancellation and deadlines reach a preempted sequence in the waiting queue
 * as they reach any waiting one.
 *
 * <p>Prefix caching ({@code moe.router.prefix-caching.enabled}) changes nothing here: a sequence's reservation
 * still counts the blocks it shares with others, so admission stays on the safe side, and the cached blocks nobody
 * holds are evicted whenever a reserved block is taken, so they never stand in its way.
 *
 * <p>Faults. When an expert group cannot compute a layer, the step throws {@link ExpertUnavailableException}
 * naming the rows that needed it; just those sequences end with UNAVAILABLE, and the step is run again without
 * them (a failed step commits nothing, so re-running rewrites the same positions). In degraded mode
 * ({@code moe.router.experts.degraded-mode=mask}) the executor masks the group's experts instead and the step goes
 * on; {@link #masked} adds the masked pairs to each sequence's count, which its next message carries. A client that goes away sets
 * {@link RouterSequence#cancelled} and wakes the engine, which frees the sequence's cache before the next step.
 * Deadlines are checked between steps.
 *
 * <p>Threads. {@link #submit} and {@link #cancel} run on gRPC threads and hand over through the lock-free
 * {@code arrivals} queue, the {@code queued} counter and the sequence's volatile flag; everything else, the loop and
 * the waiting queue included, belongs to the engine thread. The per-step work allocates only the protobuf message
 * that carries each token to its client.
 */
final class GenerationEngine implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(GenerationEngine.class);

    private final GenerationLoop loop;
    private final KvCache cache;
    private final RoutingStatistics stats;
    private final RouterMetrics metrics;
    private final int maxSequences;
    private final int maxQueued;
    private final int watermarkBlocks;
    private final Duration retryAfter;
    private final ConcurrentLinkedQueue<RouterSequence> arrivals = new ConcurrentLinkedQueue<>();
    private final AtomicInteger queued = new AtomicInteger();
    private final Thread thread;
    private volatile boolean closed;
    /** Read by the metrics and DescribeModel threads; written by the engine thread. */
    private volatile int runningCount;
    private volatile int freeBlocks;
    private volatile int cachedBlocks;
    private volatile long prefixQueriedTokens;
    private volatile long prefixHitTokens;
    // Engine thread only.
    private final ArrayDeque<RouterSequence> waiting = new ArrayDeque<>();
    /** What deadlines are checked against: System.nanoTime, or a test's clock when it steps through {@link #cycle}. */
    LongSupplier clock = System::nanoTime;

    /** @param watermark fraction of the KV cache's blocks that admission leaves free, in [0, 1) */
    GenerationEngine(MoeModel model, KvCache cache, int maxSequences, int maxQueued, Duration retryAfter, double watermark,
                     RoutingStatistics stats, RouterMetrics metrics) {
        if (!(watermark >= 0 && watermark < 1)) throw new IllegalArgumentException("the KV-cache watermark must lie in [0, 1), got " + watermark);
        this.loop = new GenerationLoop(model, cache, maxSequences, stats);
        this.cache = cache;
        this.stats = stats;
        this.metrics = metrics;
        this.maxSequences = maxSequences;
        this.maxQueued = maxQueued;
        this.watermarkBlocks = (int) (watermark * cache.totalBlocks());
        this.freeBlocks = cache.totalBlocks();
        this.retryAfter = retryAfter;
        this.thread = Thread.ofPlatform().name("generation-engine").daemon().unstarted(this::run);
    }

    void start() {
        thread.start();
    }

    /** Queues a sequence for admission, or refuses it when the queue is full. */
    void submit(RouterSequence s) {
        if (closed) throw Status.UNAVAILABLE.withDescription("the router is shutting down").asRuntimeException();
        if (queued.incrementAndGet() > maxQueued) {
            queued.decrementAndGet();
            metrics.rejectedQueueFull();
            Metadata trailers = new Metadata();
            trailers.put(Metadata.Key.of("retry-after-ms", Metadata.ASCII_STRING_MARSHALLER), Long.toString(retryAfter.toMillis()));
            throw new StatusRuntimeException(Status.RESOURCE_EXHAUSTED.withDescription("the router is saturated: "
                    + maxQueued + " requests are already waiting for admission; retry later"), trailers);
        }
        arrivals.add(s);
        LockSupport.unpark(thread);
    }

    /**
     * Degraded mode, on the engine thread during a step: {@code pairs} of step row {@code row}'s (token, expert)
     * pairs were masked; they count towards its sequence's total, which goes out with its next token.
     */
    void masked(int row, int pairs) {
        RouterSequence s = (RouterSequence) loop.ownerOfRow(row);
        s.maskedExpertPairs += pairs;
        // Its keys and values from here on are not what the model computes: no other request may reuse them.
        s.excludeFromPrefixCache();
    }

    /** The client went away: the sequence stops and its cache is freed before the next step. */
    void cancel(RouterSequence s) {
        s.cancelled = true;
        LockSupport.unpark(thread);
    }

    int runningCount() {
        return runningCount;
    }

    int waitingCount() {
        return queued.get();
    }

    /** KV-cache positions in blocks no sequence holds. */
    long freeKvTokens() {
        return (long) freeBlocks * cache.blockSize();
    }

    int freeKvBlocks() {
        return freeBlocks;
    }

    int usedKvBlocks() {
        return cache.totalBlocks() - freeBlocks;
    }

    /** Blocks holding a cached prefix (prefix caching), as of the last step. */
    int cachedBlocks() {
        return cachedBlocks;
    }

    long prefixQueriedTokens() {
        return prefixQueriedTokens;
    }

    long prefixHitTokens() {
        return prefixHitTokens;
    }

    private void run() {
        while (!closed) {
            if (!cycle()) LockSupport.parkNanos(this, 50_000_000L);
        }
        for (RouterSequence s : running()) fail(s, Status.UNAVAILABLE.withDescription("the router is shutting down"));
        Status shutdown = Status.UNAVAILABLE.withDescription("the router is shutting down");
        for (RouterSequence s; (s = waiting.poll()) != null; ) s.emitter.fail(shutdown.asRuntimeException());
        for (RouterSequence s; (s = arrivals.poll()) != null; ) s.emitter.fail(shutdown.asRuntimeException());
    }

    /**
     * One round of the engine thread: schedules, runs a step, puts what it preempted back in the queue; false when
     * nothing was running. Tests call it on their own thread with the engine's thread never started, to step through.
     */
    boolean cycle() {
        try {
            schedule();
            if (loop.running().isEmpty()) return false;
            step();
        } catch (Throwable t) {
            LOG.errorf(t, "generation step failed");
            for (RouterSequence s : running()) fail(s, Status.INTERNAL.withDescription("the router failed a step: " + t));
        }
        requeuePreempted();
        account();
        return true;
    }

    /** Takes arrivals, drops cancelled and expired sequences, admits what fits. */
    private void schedule() {
        for (RouterSequence s; (s = arrivals.poll()) != null; ) waiting.add(s);
        long now = clock.getAsLong();
        for (var it = waiting.iterator(); it.hasNext(); ) {
            RouterSequence s = it.next();
            if (s.cancelled || s.expired(now)) {
                it.remove();
                queued.decrementAndGet();
                if (!s.cancelled) s.emitter.fail(deadline(s).asRuntimeException());
            }
        }
        List<Sequence> running = loop.running();
        for (int i = running.size() - 1; i >= 0; i--) {
            RouterSequence s = (RouterSequence) running.get(i);
            if (s.cancelled) loop.end(s);
            else if (s.expired(now)) fail(s, deadline(s));
        }
        account();
        while (!waiting.isEmpty() && loop.running().size() < maxSequences) {
            RouterSequence s = waiting.peek();
            // Alone, a sequence is admitted whatever the watermark: GenerateRequests refused those the cache cannot hold.
            if (!loop.running().isEmpty() && !loop.fits(s, watermarkBlocks)) break;
            if (!loop.admit(s)) break;
            waiting.poll();
            queued.decrementAndGet();
            account();
        }
    }

    private static Status deadline(RouterSequence s) {
        return Status.DEADLINE_EXCEEDED.withDescription("the request's deadline passed after "
                + (System.nanoTime() - s.arrivedNanos) / 1_000_000 + " ms");
    }

    /** Runs one step; a step an expert group or the KV cache failed is run again without the sequences it failed. */
    private void step() {
        while (!loop.running().isEmpty()) {
            long t0 = System.nanoTime();
            try {
                loop.step();
            } catch (ExpertUnavailableException e) {
                stats.discard();
                for (int r : e.rows()) fail((RouterSequence) loop.ownerOfRow(r), Status.UNAVAILABLE.withDescription(e.getMessage()));
                continue;
            } catch (KvCacheFullException e) {
                // Only a sequence alone can fail so, and GenerateRequests refuses those longer than the whole cache.
                stats.discard();
                LOG.errorf("a sequence outgrew the whole KV cache: %s", e.getMessage());
                for (RouterSequence s : running()) {
                    if (s.slot() == e.slot()) fail(s, Status.RESOURCE_EXHAUSTED.withDescription(e.getMessage()));
                }
                continue;
            }
            stats.commit();
            metrics.step(System.nanoTime() - t0);
            return;
        }
    }

    /** The running sequences, as a copy (for the rare paths that end them all). */
    private List<RouterSequence> running() {
        List<RouterSequence> copy = new ArrayList<>(loop.running().size());
        for (var s : loop.running()) copy.add((RouterSequence) s);
        return copy;
    }

    /** The sequences the last step preempted go back to the front of the waiting queue, oldest first. */
    private void requeuePreempted() {
        for (Sequence s; (s = loop.pollPreempted()) != null; ) {
            waiting.addFirst((RouterSequence) s);
            queued.incrementAndGet();
            metrics.preempted();
        }
    }

    /** Publishes what the running sequences hold, for the metrics and DescribeModel. */
    private void account() {
        freeBlocks = cache.freeBlocks();
        runningCount = loop.running().size();
        cachedBlocks = cache.cachedBlocks();
        prefixQueriedTokens = cache.prefixQueriedTokens();
        prefixHitTokens = cache.prefixHitTokens();
    }

    private void fail(RouterSequence s, Status status) {
        if (s.phase() == Sequence.Phase.DONE) return;
        s.emitter.fail(status.asRuntimeException());
        loop.end(s);
    }

    @Override
    public void close() {
        closed = true;
        LockSupport.unpark(thread);
        try {
            thread.join(10_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
