package io.moeserve.expert;

import io.grpc.Status;
import io.moeserve.proto.WireTensors;
import io.moeserve.proto.expert.v1.ExpertBatchResponse;
import io.moeserve.runtime.expert.ExpertExecutor;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import org.jboss.logging.Logger;

/**
 * Computes the pod's calls in batches with the runtime's CPU kernels: on the gRPC thread that brought a call when
 * the pod is idle, else on the pod's compute thread.
 *
 * <p>Design. Calls from many routers (or from one router's concurrent steps) arrive on gRPC threads, are parsed
 * and validated there, and wait in one queue. Whoever computes holds one lock, takes the first queued call and,
 * without waiting for more, every call already queued, up to {@code maxBatchTokens} tokens: under light load a
 * call runs at once, under heavy load the batch grows by itself, and each expert's weights are streamed once for
 * all the batch's tokens routed to it. Calls are grouped by layer; a layer's tokens are concatenated (a single
 * call is computed in place) and computed in chunks of at most {@code maxBatchTokens}. Each token's answer is the
 * sum over its own experts only, so batching calls together never changes a result. One batch at a time, because
 * the kernels already use every core for one product; a second would only contend for them.
 *
 * <p>Who computes. A decode-sized call (at most {@code inlineMaxTokens}) that finds the lock free is computed at
 * once on the gRPC thread that parsed it, together with anything queued meanwhile, and answered from there: that
 * saves two thread hand-offs per call (wake the compute thread; wake the transport to write the answer), which
 * on a busy node cost as much as a small computation (expert-service/README.md, BENCHMARKS.md). That thread does
 * one batch and leaves; whatever arrived in the meantime, and every call larger than {@code inlineMaxTokens}
 * (prefill chunks, which would hold a transport thread for long), is left to the compute thread, which blocks on
 * the lock until the batch in progress ends. A call is therefore never waiting without a thread on its way to it.
 */
final class ExpertComputer implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(ExpertComputer.class);
    private static final Comparator<ExpertCall> BY_LAYER = Comparator.comparingInt(c -> c.layer);

    private final ConcurrentLinkedQueue<ExpertCall> queue = new ConcurrentLinkedQueue<>();
    /** Held by whoever computes a batch; every poll of the queue happens under it. */
    private final ReentrantLock computing = new ReentrantLock();
    private final AtomicInteger queuedTokens = new AtomicInteger();
    private final AtomicInteger inFlight = new AtomicInteger();
    private final ExpertExecutor executor;
    private final int hidden;
    private final int k;
    private final int maxBatch;
    private final int inlineMaxTokens;
    private final String modelId;
    private final long routingTableVersion;
    private final float[] x;
    private final int[] experts;
    private final float[] weights;
    private final float[] out;
    private final List<ExpertCall> batch = new ArrayList<>();
    private final Thread thread;
    private ExpertMetrics metrics;
    private volatile boolean started;
    private volatile boolean closed;

    /** @param inlineMaxTokens largest call computed on the gRPC thread that brought it; 0 sends every call to the compute thread */
    ExpertComputer(ExpertExecutor executor, int hidden, int k, int maxBatch, int inlineMaxTokens, String modelId,
                   long routingTableVersion) {
        this.executor = executor;
        this.hidden = hidden;
        this.k = k;
        this.maxBatch = maxBatch;
        this.inlineMaxTokens = Math.min(inlineMaxTokens, maxBatch);
        this.modelId = modelId;
        this.routingTableVersion = routingTableVersion;
        this.x = new float[maxBatch * hidden];
        this.experts = new int[maxBatch * k];
        this.weights = new float[maxBatch * k];
        this.out = new float[maxBatch * hidden];
        this.thread = Thread.ofPlatform().name("expert-compute").daemon().unstarted(this::run);
    }

    void start(ExpertMetrics metrics) {
        this.metrics = metrics;
        thread.start();
        started = true;
    }

    void submit(ExpertCall call) {
        if (closed) {
            call.emitter.fail(Status.UNAVAILABLE.withDescription("the expert pod is shutting down").asRuntimeException());
            return;
        }
        inFlight.incrementAndGet();
        queuedTokens.addAndGet(call.tokens);
        queue.add(call);
        if (started && call.tokens <= inlineMaxTokens && computing.tryLock()) {
            try {
                computeBatch(true);
            } finally {
                computing.unlock();
            }
            if (queue.isEmpty()) return;
        }
        LockSupport.unpark(thread);
    }

    int queuedTokens() {
        return queuedTokens.get();
    }

    int inFlightCalls() {
        return inFlight.get();
    }

    /** Waits until no call is queued or computing, at most {@code timeoutNanos}; returns whether it got there. */
    boolean awaitIdle(long timeoutNanos) throws InterruptedException {
        long deadline = System.nanoTime() + timeoutNanos;
        while (inFlight.get() > 0) {
            if (System.nanoTime() - deadline > 0) return false;
            Thread.sleep(5);
        }
        return true;
    }

    private void run() {
        while (!closed) {
            if (queue.isEmpty()) {
                // A submitter unparks after queueing, so a call queued after this check ends the park at once.
                LockSupport.parkNanos(this, 200_000_000L);
                continue;
            }
            computing.lock();
            try {
                while (!closed && !queue.isEmpty()) computeBatch(false);
            } finally {
                computing.unlock();
            }
        }
    }

    /**
     * Takes the first queued call and every call queued behind it that fits, computes them layer by layer and
     * answers them; the caller holds {@link #computing}. On a gRPC thread ({@code inline}) it stops at the first
     * call too large to compute there, leaving it for the compute thread.
     */
    private void computeBatch(boolean inline) {
        batch.clear();
        int tokens = 0;
        int limit = inline ? inlineMaxTokens : maxBatch;
        for (ExpertCall next; (next = queue.peek()) != null && (batch.isEmpty() && !inline || tokens + next.tokens <= limit); ) {
            ExpertCall c = queue.poll();
            if (c == null) break; // close() empties the queue without the lock
            tokens = admit(c, tokens);
        }
        if (batch.isEmpty()) return;
        long started = System.nanoTime();
        for (ExpertCall c : batch) {
            c.startedNanos = started;
            c.batchedCalls = batch.size();
        }
        batch.sort(BY_LAYER);
        for (int from = 0; from < batch.size(); ) {
            int to = from + 1;
            while (to < batch.size() && batch.get(to).layer == batch.get(from).layer) to++;
            computeLayer(from, to);
            from = to;
        }
        long computeMicros = (System.nanoTime() - started) / 1000;
        for (ExpertCall c : batch) answer(c, computeMicros);
        batch.clear();
    }

    /**
     * Adds a dequeued call to the batch unless the router already gave up on it (deadline passed, or cancelled
     * because it was retried elsewhere): computing it would only delay the calls still wanted, and under overload
     * that wasted work is what turns timeouts into a retry storm.
     */
    private int admit(ExpertCall c, int tokens) {
        queuedTokens.addAndGet(-c.tokens);
        if ((c.context != null && c.context.isCancelled()) || (c.timeoutNanos > 0 && System.nanoTime() - c.arrivedNanos > c.timeoutNanos)) {
            inFlight.decrementAndGet();
            metrics.callAbandoned();
            c.emitter.fail(Status.CANCELLED.withDescription("the caller gave up on the call before it was computed").asRuntimeException());
            return tokens;
        }
        batch.add(c);
        return tokens + c.tokens;
    }

    /** Computes calls [from, to) of the batch, all of one layer; leaves each answer in its {@code out}. */
    private void computeLayer(int from, int to) {
        int layer = batch.get(from).layer;
        try {
            ExpertCall only = batch.get(from);
            if (to - from == 1 && only.tokens <= maxBatch) {
                only.out = new float[only.tokens * hidden];
                executor.computeExperts(0, layer, only.tokens, k, only.x, only.experts, only.weights, only.out);
                return;
            }
            for (int i = from; i < to; i++) batch.get(i).out = new float[batch.get(i).tokens * hidden];
            // Walk the calls' tokens in order, filling the staging buffers chunk by chunk.
            int call = from, token = 0;
            while (call < to) {
                int chunkCall = call, chunkToken = token, n = 0;
                while (call < to && n < maxBatch) {
                    ExpertCall c = batch.get(call);
                    int take = Math.min(c.tokens - token, maxBatch - n);
                    System.arraycopy(c.x, token * hidden, x, n * hidden, take * hidden);
                    System.arraycopy(c.experts, token * k, experts, n * k, take * k);
                    System.arraycopy(c.weights, token * k, weights, n * k, take * k);
                    n += take;
                    token += take;
                    if (token == c.tokens) {
                        call++;
                        token = 0;
                    }
                }
                executor.computeExperts(0, layer, n, k, x, experts, weights, out);
                for (int done = 0; done < n; ) {
                    ExpertCall c = batch.get(chunkCall);
                    int take = Math.min(c.tokens - chunkToken, n - done);
                    System.arraycopy(out, done * hidden, c.out, chunkToken * hidden, take * hidden);
                    done += take;
                    chunkToken += take;
                    if (chunkToken == c.tokens) {
                        chunkCall++;
                        chunkToken = 0;
                    }
                }
            }
        } catch (RuntimeException e) {
            LOG.errorf(e, "computing layer %d failed", layer);
            for (int i = from; i < to; i++) {
                batch.get(i).out = null;
                batch.get(i).failure = e;
            }
        }
    }

    private void answer(ExpertCall c, long computeMicros) {
        try {
            if (c.out == null) {
                String why = c.failure == null ? "no result" : c.failure.toString();
                c.emitter.fail(Status.INTERNAL.withDescription("computing the experts failed: " + why).asRuntimeException());
                return;
            }
            ExpertBatchResponse response = ExpertBatchResponse.newBuilder()
                    .setModelId(modelId)
                    .setRoutingTableVersion(c.request.getRoutingTableVersion() != 0 ? c.request.getRoutingTableVersion() : routingTableVersion)
                    .setLayer(c.layer)
                    .setNumTokens(c.tokens)
                    .setHiddenSize(hidden)
                    .setDtype(c.outputDType)
                    .setOutputs(WireTensors.encode(c.out, 0, c.tokens * hidden, c.outputDType))
                    .setQueueMicros((c.startedNanos - c.arrivedNanos) / 1000)
                    .setComputeMicros(computeMicros)
                    .setBatchedCalls(c.batchedCalls)
                    .setQueuedTokens(queuedTokens.get())
                    .build();
            metrics.callAnswered(c.startedNanos - c.arrivedNanos);
            c.emitter.complete(response);
        } finally {
            inFlight.decrementAndGet();
        }
    }

    @Override
    public void close() {
        closed = true;
        thread.interrupt();
        for (ExpertCall c; (c = queue.poll()) != null; ) {
            inFlight.decrementAndGet();
            c.emitter.fail(Status.UNAVAILABLE.withDescription("the expert pod is shutting down").asRuntimeException());
        }
    }
}
