package io.moeserve.router;

import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.moeserve.proto.WireTensors;
import io.moeserve.proto.expert.v1.ExpertBatchRequest;
import io.moeserve.proto.expert.v1.ExpertBatchResponse;
import io.moeserve.proto.expert.v1.WireDType;
import io.moeserve.runtime.expert.ExpertBatch;
import io.moeserve.runtime.expert.ExpertBatchDispatcher;
import io.moeserve.runtime.expert.ExpertUnavailableException;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * Sends each expert group's share of a MoE layer call to one of the group's pods over gRPC, all groups at once,
 * and waits for every answer.
 *
 * <p>Design. Every group has one reusable {@link GroupCall}: its request is built from the batch (hidden states
 * packed in the wire dtype, pairs as offsets, ids and float32 weights), sent to the replica with the least
 * outstanding work, and answered on the gRPC transport thread, which unpacks the partial sums straight into the
 * batch. A failed attempt (pod gone, draining, past its deadline, answering nonsense) is retried at once on another
 * replica of the group; when every replica has been tried, the same ones again after a short back-off, up to
 * {@code maxAttempts}. When a group still has no answer the call ends with {@link ExpertUnavailableException}
 * naming the group, the pods tried and why, and the step rows that needed it, so that only those sequences fail.
 * Each attempt has its own deadline (a base plus a per-token allowance), so a call can never hang.
 *
 * <p>Lanes. A layer call is {@link #begin} (send) and {@link #await} (wait, report), so the step computes while the
 * pods do; each lane has its own calls and completion, so the micro-batches of a step each have a layer call in
 * flight. Retries, deadlines and failures are per group call, hence per lane; a failure names the rows of the
 * lane's batches, which the executor maps to the step's rows.
 *
 * <p>Waiting. The answers' completion is a countdown the transport thread brings to zero. The waiting thread first
 * spins on it for {@code spinNanos} (a busy poll: an answer that comes within it costs no wake-up, tens of
 * microseconds on our VMs), then parks until the last answer unparks it. Spinning burns a core the pods could use
 * when they share the machine, so it is a setting, off (0) by default. The transport thread that delivers a lane's last
 * answer first runs {@code onAnswered} (the router wakes its kernel workers there, which parked while the step waited,
 * so that their wake-up overlaps the waiting thread's instead of following it at the layer's first product), then
 * unparks the waiter.
 */
final class GrpcExpertDispatcher implements ExpertBatchDispatcher {
    private final List<ExpertGroup> groups;
    private final Lane[] lanes;
    private final long spinNanos;
    private final String modelId;
    private final long routingTableVersion;
    private final WireDType wire;
    private final int hidden;
    private final long baseTimeoutNanos;
    private final long perTokenNanos;
    private final int maxAttempts;
    private final long backoffNanos;
    private final RouterMetrics metrics;
    private final ScheduledExecutorService retries;
    /** Calls go on each pod's long-lived stream (ExpertCallStream) rather than one unary call each. */
    private final boolean stream;
    /** Run by the transport thread that brings a lane's last answer, before it unparks the waiting thread. */
    private final Runnable onAnswered;

    GrpcExpertDispatcher(List<ExpertGroup> groups, String modelId, long routingTableVersion, WireDType wire, int hidden,
                         Duration callTimeout, Duration perToken, int maxAttempts, Duration backoff, RouterMetrics metrics,
                         ScheduledExecutorService retries, boolean stream) {
        this(groups, modelId, routingTableVersion, wire, hidden, callTimeout, perToken, maxAttempts, backoff, metrics, retries, stream, 1,
                Duration.ZERO, () -> { });
    }

    /**
     * @param stream   whether calls go over one long-lived bidirectional stream per replica instead of a unary call each
     * @param lanes    layer calls that can be in flight at once (one per micro-batch)
     * @param spinWait how long a wait busy-polls for the answers before parking; zero parks at once
     * @param onAnswered run on the transport thread that delivers a lane's last answer, just before the waiter is woken
     */
    GrpcExpertDispatcher(List<ExpertGroup> groups, String modelId, long routingTableVersion, WireDType wire, int hidden,
                         Duration callTimeout, Duration perToken, int maxAttempts, Duration backoff, RouterMetrics metrics,
                         ScheduledExecutorService retries, boolean stream, int lanes, Duration spinWait, Runnable onAnswered) {
        this.groups = groups;
        this.modelId = modelId;
        this.routingTableVersion = routingTableVersion;
        this.wire = wire;
        this.hidden = hidden;
        this.baseTimeoutNanos = callTimeout.toNanos();
        this.perTokenNanos = perToken.toNanos();
        this.maxAttempts = Math.max(1, maxAttempts);
        this.backoffNanos = backoff.toNanos();
        this.metrics = metrics;
        this.retries = retries;
        this.stream = stream;
        this.spinNanos = spinWait.toNanos();
        this.onAnswered = onAnswered;
        this.lanes = new Lane[Math.max(1, lanes)];
        for (int i = 0; i < this.lanes.length; i++) this.lanes[i] = new Lane();
    }

    @Override
    public int lanes() {
        return lanes.length;
    }

    @Override
    public void dispatch(long step, int layer, ExpertBatch[] batches) {
        begin(step, layer, batches, 0);
        await(0);
    }

    @Override
    public void begin(long step, int layer, ExpertBatch[] batches, int laneIndex) {
        Lane lane = lanes[laneIndex];
        if (lane.batches != null) throw new IllegalStateException("lane " + laneIndex + " already has a call in flight");
        // The calls leave one after the other, each costing the step a fraction of a millisecond to hand to gRPC, and
        // the layer waits for the last answer: the call with the most work goes first.
        int[] sendOrder = lane.sendOrder;
        int active = 0;
        for (int g = 0; g < batches.length; g++) {
            if (batches[g].size() == 0) continue;
            int at = active++;
            while (at > 0 && batches[sendOrder[at - 1]].pairs() < batches[g].pairs()) {
                sendOrder[at] = sendOrder[at - 1];
                at--;
            }
            sendOrder[at] = g;
        }
        lane.batches = batches;
        lane.layer = layer;
        lane.active = active;
        if (active == 0) return;
        lane.began = System.nanoTime();
        lane.done.reset(active);
        long longest = 0;
        for (int i = 0; i < active; i++) {
            GroupCall c = lane.calls[sendOrder[i]];
            c.begin(step, layer, batches[sendOrder[i]], lane.done);
            longest = Math.max(longest, c.timeoutNanos);
        }
        lane.longest = longest;
        metrics.expertSend(System.nanoTime() - lane.began);
    }

    @Override
    public void await(int laneIndex) {
        Lane lane = lanes[laneIndex];
        ExpertBatch[] batches = lane.batches;
        if (batches == null) throw new IllegalStateException("lane " + laneIndex + " has no call in flight");
        try {
            if (lane.active > 0) {
                // Every attempt has a deadline, so this bound is only a guard against a lost callback.
                long bound = maxAttempts * (lane.longest + backoffNanos) + TimeUnit.SECONDS.toNanos(5);
                if (!lane.done.await(bound, spinNanos)) {
                    for (GroupCall c : lane.calls) {
                        if (c.batch != null && !c.finished) c.failure = "no answer within " + bound / 1_000_000 + " ms";
                    }
                    lane.done = new Completion(onAnswered); // the late answers count down the old one, not the next call's
                }
                metrics.expertLayer(System.nanoTime() - lane.began);
            }
            failIfAny(lane, lane.layer, batches);
        } finally {
            lane.batches = null;
        }
    }

    private void failIfAny(Lane lane, int layer, ExpertBatch[] batches) {
        GroupCall[] calls = lane.calls;
        StringBuilder message = null;
        String first = null;
        int rows = 0;
        for (int g = 0; g < batches.length; g++) {
            GroupCall c = calls[g];
            if (batches[g].size() == 0 || c.failure == null) continue;
            if (message == null) {
                message = new StringBuilder();
                first = c.group.name;
            } else {
                message.append("; ");
            }
            message.append("expert group ").append(c.group.name).append(" (").append(c.group.hosts.spec())
                    .append(") could not compute layer ").append(layer).append(": ").append(c.failure);
            rows += batches[g].size();
        }
        for (GroupCall c : calls) c.batch = null;
        if (message == null) return;
        int[] failedRows = new int[rows];
        int[] failedGroups = new int[batches.length];
        int n = 0;
        int groupCount = 0;
        for (int g = 0; g < batches.length; g++) {
            if (batches[g].size() == 0 || calls[g].failure == null) continue;
            System.arraycopy(batches[g].rows, 0, failedRows, n, batches[g].size());
            n += batches[g].size();
            failedGroups[groupCount++] = g;
        }
        throw new ExpertUnavailableException(layer, first, failedRows, java.util.Arrays.copyOf(failedGroups, groupCount),
                message.toString(), null);
    }

    /** One lane's state, allocated once: a call per group, the send order, the answers' countdown. */
    private final class Lane {
        final GroupCall[] calls = new GroupCall[groups.size()];
        final int[] sendOrder = new int[groups.size()];
        Completion done = new Completion(onAnswered);
        ExpertBatch[] batches;
        int layer;
        int active;
        long began;
        long longest;

        Lane() {
            for (int g = 0; g < calls.length; g++) calls[g] = new GroupCall(groups.get(g), g);
        }
    }

    /**
     * The answers still awaited by one lane's layer call. The transport thread that brings the count to zero unparks
     * the waiter; the waiter publishes itself before re-reading the count (both volatile), so no wake-up is lost.
     */
    static final class Completion {
        private final AtomicInteger remaining = new AtomicInteger();
        private final Runnable onDone;
        private volatile Thread waiter;

        Completion(Runnable onDone) {
            this.onDone = onDone;
        }

        void reset(int calls) {
            remaining.set(calls);
        }

        void countDown() {
            if (remaining.decrementAndGet() == 0) {
                onDone.run();
                Thread w = waiter;
                if (w != null) LockSupport.unpark(w);
            }
        }

        /** Spins up to {@code spinNanos}, then parks; false when {@code boundNanos} passed first. */
        boolean await(long boundNanos, long spinNanos) {
            long start = System.nanoTime();
            while (remaining.get() != 0) {
                if (System.nanoTime() - start >= spinNanos) break;
                Thread.onSpinWait();
            }
            if (remaining.get() == 0) return true;
            waiter = Thread.currentThread();
            try {
                while (remaining.get() != 0) {
                    long left = boundNanos - (System.nanoTime() - start);
                    if (left <= 0) return false;
                    LockSupport.parkNanos(this, left);
                    if (Thread.currentThread().isInterrupted()) {
                        throw new IllegalStateException("interrupted while waiting for expert pods");
                    }
                }
                return true;
            } finally {
                waiter = null;
            }
        }
    }

    /** One group's call of its lane's current layer, reused from layer to layer. */
    private final class GroupCall implements StreamObserver<ExpertBatchResponse> {
        final ExpertGroup group;
        final int index;
        final ExpertReplica[] tried = new ExpertReplica[maxAttempts];
        final StringBuilder problems = new StringBuilder();
        ExpertBatch batch;
        Completion done;
        ExpertBatchRequest request;
        int layer;
        int attempts;
        long timeoutNanos;
        long beganNanos;
        ExpertReplica current;
        ExpertBatchResponse response;
        byte[] scratch = new byte[0];
        volatile boolean finished;
        volatile String failure;

        GroupCall(ExpertGroup group, int index) {
            this.group = group;
            this.index = index;
        }

        void begin(long step, int layer, ExpertBatch batch, Completion done) {
            this.layer = layer;
            this.batch = batch;
            this.done = done;
            this.attempts = 0;
            this.failure = null;
            this.finished = false;
            this.response = null;
            this.problems.setLength(0);
            this.beganNanos = System.nanoTime();
            int n = batch.size();
            this.timeoutNanos = baseTimeoutNanos + perTokenNanos * n;
            int bytes = n * hidden * WireTensors.elementBytes(wire);
            if (scratch.length < bytes) scratch = new byte[Math.max(bytes, scratch.length * 2)];
            ExpertBatchRequest.Builder b = ExpertBatchRequest.newBuilder()
                    .setModelId(modelId)
                    .setRoutingTableVersion(routingTableVersion)
                    .setLayer(layer)
                    .setNumTokens(n)
                    .setHiddenSize(hidden)
                    .setDtype(wire)
                    .setOutputDtype(wire)
                    .setStep(step)
                    .setHiddenStates(WireTensors.encode(batch.x, 0, n * hidden, wire, scratch))
                    .addPairOffsets(0);
            int k = batch.k();
            int pairs = 0;
            for (int t = 0; t < n; t++) {
                for (int j = 0; j < k; j++) {
                    int e = batch.experts[t * k + j];
                    if (e < 0) continue;
                    b.addExpertIds(e).addRoutingWeights(batch.weights[t * k + j]);
                    pairs++;
                }
                b.addPairOffsets(pairs);
            }
            this.request = b.build();
            send();
        }

        private void send() {
            ExpertReplica r = group.choose(tried, attempts);
            if (r == null && attempts > 0) r = group.choose(tried, 0);
            if (r == null) {
                finish("the group has no pods" + (problems.isEmpty() ? " (none resolved from " + group.endpoints + ")" : ": " + problems));
                return;
            }
            tried[attempts++] = r;
            current = r;
            r.outstandingTokens.addAndGet(batch.size());
            metrics.wireBytesSent(request.getSerializedSize());
            if (stream) {
                r.stream.send(request, this, timeoutNanos, r.deadlines);
            } else {
                r.stub.withDeadlineAfter(timeoutNanos, TimeUnit.NANOSECONDS).computeExperts(request, this);
            }
        }

        @Override
        public void onNext(ExpertBatchResponse value) {
            response = value;
        }

        @Override
        public void onError(Throwable t) {
            ExpertReplica r = current;
            r.outstandingTokens.addAndGet(-batch.size());
            Status s = Status.fromThrowable(t);
            String problem = r + ": " + s.getCode() + (s.getDescription() == null ? "" : " (" + s.getDescription() + ")");
            boolean draining = s.getCode() == Status.Code.UNAVAILABLE && s.getDescription() != null && s.getDescription().contains("draining");
            r.recordFailure(problem, backoffNanos, draining);
            retryOrFail(problem, s.getCode() != Status.Code.INVALID_ARGUMENT);
        }

        @Override
        public void onCompleted() {
            ExpertReplica r = current;
            r.outstandingTokens.addAndGet(-batch.size());
            ExpertBatchResponse resp = response;
            String problem = check(resp);
            if (problem != null) {
                r.recordFailure(r + ": " + problem, backoffNanos, false);
                retryOrFail(r + ": " + problem, true);
                return;
            }
            try {
                WireTensors.decode(resp.getOutputs(), resp.getDtype(), batch.out, 0, batch.size() * hidden);
            } catch (IllegalArgumentException e) {
                retryOrFail(r + ": " + e.getMessage(), true);
                return;
            }
            long nanos = System.nanoTime() - beganNanos;
            r.recordSuccess(resp.getQueuedTokens());
            metrics.wireBytesReceived(resp.getSerializedSize());
            metrics.expertCall(index, nanos);
            finished = true;
            done.countDown();
        }

        private String check(ExpertBatchResponse resp) {
            if (resp == null) return "answered nothing";
            if (!resp.getModelId().equals(modelId)) return "answered for model '" + resp.getModelId() + "'";
            if (resp.getLayer() != layer || resp.getNumTokens() != batch.size() || resp.getHiddenSize() != hidden) {
                return "answered layer " + resp.getLayer() + " with " + resp.getNumTokens() + " × " + resp.getHiddenSize()
                        + " for layer " + layer + " with " + batch.size() + " × " + hidden;
            }
            if (!WireTensors.isSupported(resp.getDtype())) return "answered in dtype " + resp.getDtype();
            return null;
        }

        private void retryOrFail(String problem, boolean retryable) {
            if (!problems.isEmpty()) problems.append("; ");
            problems.append(problem);
            if (!retryable || attempts >= maxAttempts) {
                finish("tried " + attempts + " time(s): " + problems);
                return;
            }
            metrics.expertRetry(index);
            ExpertReplica untried = group.choose(tried, attempts);
            if (untried != null) {
                send();
            } else {
                // Every replica failed once: give them a moment (a restarting pod, a blip) before the next round.
                retries.schedule(this::send, Math.min(backoffNanos, TimeUnit.MILLISECONDS.toNanos(100)), TimeUnit.NANOSECONDS);
            }
        }

        private void finish(String why) {
            failure = why;
            metrics.expertFailure(index);
            finished = true;
            done.countDown();
        }
    }
}
