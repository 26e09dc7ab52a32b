package io.moeserve.router;

import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.moeserve.proto.router.v1.FinishReason;
import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.proto.router.v1.TokenLogprob;
import io.moeserve.proto.router.v1.Usage;
import io.moeserve.runtime.expert.ExpertUnavailableException;
import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.KvCacheFullException;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.StepBatch;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import org.jboss.logging.Logger;

/**
 * Continuous batching: one thread runs forward steps over every sequence in flight, letting sequences join and
 * leave between steps.
 *
 * <p>Design. Each step holds one decode token of every decoding sequence, then fills what is left of the step's
 * token budget with prompt chunks of the sequences still prefilling, oldest first, so a long prompt is prefilled
 * in chunks while the others keep decoding. Admission is first come, first served, and reserves a sequence's
 * whole KV-cache footprint (prompt + max new tokens) up front: a sequence once admitted never runs out of cache,
 * so there is no preemption and no request fails half way for lack of memory. Requests that do not fit wait in a
 * bounded queue; when the queue is full a request is refused at once with RESOURCE_EXHAUSTED and a retry hint.
 *
 * <p>Faults. When an expert group cannot compute a layer, the step throws {@link ExpertUnavailableException}
 * naming the rows that needed it; just those sequences end with UNAVAILABLE, and the step is run again without
 * them (the KV cache is only committed by a completed step, so re-running rewrites the same positions). A client
 * that goes away sets {@link Sequence#cancelled} and wakes the engine, which frees the sequence's cache before the
 * next step. Deadlines are checked between steps.
 *
 * <p>Everything per step is preallocated: the step batch, the logits rows, the row-to-sequence tables. The only
 * per-token allocation is the protobuf message that carries the token to the client.
 */
final class GenerationEngine implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(GenerationEngine.class);

    private final MoeModel model;
    private final KvCache cache;
    private final RoutingStatistics stats;
    private final RouterMetrics metrics;
    private final int vocab;
    private final int maxContext;
    private final int maxSequences;
    private final int maxQueued;
    private final Duration retryAfter;
    private final StepBatch batch;
    private final float[] logits;
    private final float[] raw;
    private final Sequence[] rowOwner;
    private final Sequence[] logitOwner;
    private final int[] topIds = new int[20];
    private final float[] topValues = new float[20];
    private final ConcurrentLinkedQueue<Sequence> arrivals = new ConcurrentLinkedQueue<>();
    private final ArrayDeque<Sequence> waiting = new ArrayDeque<>();
    private final List<Sequence> running = new ArrayList<>();
    private final AtomicInteger queued = new AtomicInteger();
    private final Thread thread;
    private volatile boolean closed;
    private volatile int runningCount;
    private int committedBlocks;
    private long steps;

    GenerationEngine(MoeModel model, KvCache cache, int maxStepTokens, int maxSequences, int maxQueued, Duration retryAfter,
                     RoutingStatistics stats, RouterMetrics metrics) {
        this.model = model;
        this.cache = cache;
        this.stats = stats;
        this.metrics = metrics;
        this.vocab = model.config().vocabSize();
        this.maxContext = model.maxContext();
        this.maxSequences = maxSequences;
        this.maxQueued = maxQueued;
        this.retryAfter = retryAfter;
        this.batch = new StepBatch(maxStepTokens);
        this.logits = new float[maxSequences * vocab];
        this.raw = new float[vocab];
        this.rowOwner = new Sequence[maxStepTokens];
        this.logitOwner = new Sequence[maxSequences];
        this.thread = Thread.ofPlatform().name("generation-engine").daemon().unstarted(this::run);
    }

    void start() {
        thread.start();
    }

    /** Queues a sequence for admission, or refuses it when the queue is full. */
    void submit(Sequence s) {
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

    /** The client went away: the sequence stops and its cache is freed before the next step. */
    void cancel(Sequence s) {
        s.cancelled = true;
        LockSupport.unpark(thread);
    }

    int runningCount() {
        return runningCount;
    }

    int waitingCount() {
        return queued.get();
    }

    long freeKvTokens() {
        return (long) (cache.totalBlocks() - committedBlocks) * cache.blockSize();
    }

    private void run() {
        while (!closed) {
            try {
                schedule();
                if (running.isEmpty()) {
                    LockSupport.parkNanos(this, 50_000_000L);
                    continue;
                }
                step();
            } catch (Throwable t) {
                LOG.errorf(t, "generation step failed");
                for (Sequence s : new ArrayList<>(running)) {
                    fail(s, Status.INTERNAL.withDescription("the router failed a step: " + t));
                }
            }
        }
        for (Sequence s : new ArrayList<>(running)) fail(s, Status.UNAVAILABLE.withDescription("the router is shutting down"));
        for (Sequence s; (s = waiting.poll()) != null; ) s.emitter.fail(Status.UNAVAILABLE.withDescription("the router is shutting down").asRuntimeException());
        for (Sequence s; (s = arrivals.poll()) != null; ) s.emitter.fail(Status.UNAVAILABLE.withDescription("the router is shutting down").asRuntimeException());
    }

    /** Takes arrivals, drops cancelled and expired sequences, admits what fits. */
    private void schedule() {
        for (Sequence s; (s = arrivals.poll()) != null; ) waiting.add(s);
        long now = System.nanoTime();
        for (var it = waiting.iterator(); it.hasNext(); ) {
            Sequence s = it.next();
            if (s.cancelled || s.expired(now)) {
                it.remove();
                queued.decrementAndGet();
                if (!s.cancelled) s.emitter.fail(deadline(s).asRuntimeException());
            }
        }
        for (int i = running.size() - 1; i >= 0; i--) {
            Sequence s = running.get(i);
            if (s.cancelled) release(s);
            else if (s.expired(now)) fail(s, deadline(s));
        }
        while (!waiting.isEmpty() && running.size() < maxSequences) {
            Sequence s = waiting.peek();
            if (committedBlocks + s.reservedBlocks > cache.totalBlocks()) break;
            int slot = cache.allocateSequence();
            if (slot < 0) break;
            waiting.poll();
            queued.decrementAndGet();
            s.slot = slot;
            s.phase = Sequence.Phase.PREFILL;
            committedBlocks += s.reservedBlocks;
            running.add(s);
        }
        runningCount = running.size();
    }

    private static Status deadline(Sequence s) {
        return Status.DEADLINE_EXCEEDED.withDescription("the request's deadline passed after "
                + (System.nanoTime() - s.arrivedNanos) / 1_000_000 + " ms");
    }

    private void step() {
        while (!running.isEmpty()) {
            int logitRows = build();
            long t0 = System.nanoTime();
            try {
                model.forward(batch, cache, logits, stats);
            } catch (ExpertUnavailableException e) {
                stats.discard();
                failRows(e.rows(), Status.UNAVAILABLE.withDescription(e.getMessage()));
                continue;
            } catch (KvCacheFullException e) {
                stats.discard();
                LOG.errorf("KV cache full despite admission control: %s", e.getMessage());
                for (int r = 0; r < batch.size(); r++) {
                    if (batch.slot(r) == e.slot() && rowOwner[r].phase != Sequence.Phase.DONE) {
                        fail(rowOwner[r], Status.RESOURCE_EXHAUSTED.withDescription(e.getMessage()));
                    }
                }
                continue;
            }
            stats.commit();
            steps++;
            metrics.step(System.nanoTime() - t0);
            finishStep(logitRows);
            return;
        }
    }

    /** Fills the step batch: decode tokens first, then prompt chunks; returns the number of logit rows. */
    private int build() {
        batch.clear();
        int logitRows = 0;
        for (Sequence s : running) {
            if (s.phase != Sequence.Phase.DECODE) continue;
            rowOwner[batch.size()] = s;
            batch.add(s.generated[s.generatedCount - 1], s.slot, s.length() - 1, true);
            logitOwner[logitRows++] = s;
        }
        for (Sequence s : running) {
            if (s.phase != Sequence.Phase.PREFILL) continue;
            int budget = batch.remaining();
            if (budget == 0) {
                s.chunk = 0;
                continue;
            }
            int chunk = Math.min(budget, s.prompt.length - s.prefilled);
            s.chunk = chunk;
            for (int p = s.prefilled; p < s.prefilled + chunk; p++) {
                boolean last = p == s.prompt.length - 1;
                rowOwner[batch.size()] = s;
                batch.add(s.prompt[p], s.slot, p, last);
                if (last) logitOwner[logitRows++] = s;
            }
        }
        return logitRows;
    }

    private void finishStep(int logitRows) {
        for (Sequence s : running) {
            if (s.phase == Sequence.Phase.PREFILL) s.prefilled += s.chunk;
        }
        for (int row = 0; row < logitRows; row++) {
            Sequence s = logitOwner[row];
            if (s.phase == Sequence.Phase.DONE) continue;
            if (s.phase == Sequence.Phase.PREFILL) s.phase = Sequence.Phase.DECODE;
            take(s, row * vocab);
        }
        for (int i = running.size() - 1; i >= 0; i--) {
            if (running.get(i).phase == Sequence.Phase.DONE) running.remove(i);
        }
        runningCount = running.size();
    }

    /** Samples the sequence's next token from a logits row and sends it; ends the sequence when it stops. */
    private void take(Sequence s, int off) {
        if (s.logprobs) System.arraycopy(logits, off, raw, 0, vocab);
        int token = s.sampler.sample(logits, off);
        s.sampler.accept(token);
        s.generated[s.generatedCount++] = token;
        metrics.tokenGenerated();
        GenerateResponse.Builder out = GenerateResponse.newBuilder().addTokenIds(token);
        if (s.logprobs) out.addLogprobs(logprob(token, s.topLogprobs));
        FinishReason reason = null;
        if (s.isStop(token)) reason = FinishReason.FINISH_REASON_STOP;
        else if (s.generatedCount >= s.maxNew || s.length() >= maxContext) reason = FinishReason.FINISH_REASON_LENGTH;
        if (reason == null) {
            s.emitter.emit(out.build());
            return;
        }
        out.setFinishReason(reason).setUsage(Usage.newBuilder().setPromptTokens(s.prompt.length).setCompletionTokens(s.generatedCount));
        s.emitter.emit(out.build());
        s.emitter.complete();
        releaseSlot(s);
    }

    /** log softmax of the raw row: the chosen token's and the top-n alternatives'. */
    private TokenLogprob logprob(int token, int top) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) max = Math.max(max, raw[i]);
        double sum = 0;
        for (int i = 0; i < vocab; i++) sum += Math.exp(raw[i] - max);
        float lse = (float) (max + Math.log(sum));
        TokenLogprob.Builder b = TokenLogprob.newBuilder().setTokenId(token).setLogprob(raw[token] - lse);
        int n = Math.min(top, vocab);
        // Insertion into a small sorted array: n ≤ 20, one pass over the vocabulary.
        int filled = 0;
        for (int i = 0; i < vocab; i++) {
            float v = raw[i];
            if (filled == n && (n == 0 || v <= topValues[n - 1])) continue;
            int j = filled < n ? filled++ : n - 1;
            while (j > 0 && topValues[j - 1] < v) {
                topValues[j] = topValues[j - 1];
                topIds[j] = topIds[j - 1];
                j--;
            }
            topValues[j] = v;
            topIds[j] = i;
        }
        for (int j = 0; j < filled; j++) b.addTopTokenIds(topIds[j]).addTopLogprobs(topValues[j] - lse);
        return b.build();
    }

    private void failRows(int[] rows, Status status) {
        for (int r : rows) {
            Sequence s = rowOwner[r];
            if (s.phase != Sequence.Phase.DONE) fail(s, status);
        }
        for (int i = running.size() - 1; i >= 0; i--) {
            if (running.get(i).phase == Sequence.Phase.DONE) running.remove(i);
        }
        runningCount = running.size();
    }

    private void fail(Sequence s, Status status) {
        if (s.phase == Sequence.Phase.DONE) return;
        s.emitter.fail(status.asRuntimeException());
        release(s);
    }

    /** Ends a running sequence without a message (cancelled) or after its last one. */
    private void release(Sequence s) {
        releaseSlot(s);
        running.remove(s);
        runningCount = running.size();
    }

    private void releaseSlot(Sequence s) {
        if (s.phase == Sequence.Phase.DONE) return;
        s.phase = Sequence.Phase.DONE;
        if (s.slot >= 0) {
            cache.release(s.slot);
            s.slot = -1;
            committedBlocks -= s.reservedBlocks;
        }
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
