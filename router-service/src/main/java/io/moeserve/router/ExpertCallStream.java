package io.moeserve.router;

import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.moeserve.proto.expert.v1.ExpertBatchRequest;
import io.moeserve.proto.expert.v1.ExpertBatchResponse;
import io.moeserve.proto.expert.v1.ExpertServiceGrpc;
import io.moeserve.proto.expert.v1.ExpertStreamRequest;
import io.moeserve.proto.expert.v1.ExpertStreamResponse;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;

/**
 * The expert calls to one pod over one long-lived ComputeExpertsStream ({@code moe.router.experts.transport=stream})
 * instead of a unary call each: a call is one request message with an id, its answer one message with that id.
 *
 * <p>Design. A unary call opens an HTTP/2 stream, sends headers, the message and a half-close, and gets headers, the
 * message and trailers back: three frames or more each way and a stream's bookkeeping on both sides, per layer. On an
 * open stream a call is one DATA frame each way. What the unary call gave for free is rebuilt here: each call has its
 * own deadline (a timer on the scheduler the dispatcher gives, the transport's event loop; the stream has none), after which the caller hears
 * DEADLINE_EXCEEDED and retries elsewhere, and an answer that comes later is dropped; the deadline goes with the call,
 * so that the pod skips a call still queued past it, as it skips a unary call whose deadline passed; when the stream breaks (the pod
 * died, the connection reset, the pod ended it) every call in flight on it fails with UNAVAILABLE at once, so that
 * the dispatcher retries them on another replica, and the next call opens a new stream. A pod that is draining
 * answers each call UNAVAILABLE, as the unary call would, and the router ends the stream
 * ({@link #close}) so the pod's shutdown does not wait for it. The caller is answered the way a unary call answers
 * it ({@code onNext} then {@code onCompleted}, or {@code onError}), so the dispatcher's handling is the same for
 * both transports. Whoever takes a call out of the in-flight map (its answer, its timer or the stream's end) is the
 * only one to answer it.
 *
 * <p>Costs. A call allocates its map entry, its id's box and its timer; the unary call allocated more (a call object,
 * headers, a stream). Sends are serialised on this object: a stream's request observer takes one message at a time.
 */
final class ExpertCallStream {
    private final ExpertServiceGrpc.ExpertServiceStub stub;
    private final String address;
    private Open open;
    private long nextId;

    ExpertCallStream(ExpertServiceGrpc.ExpertServiceStub stub, String address) {
        this.stub = stub;
        this.address = address;
    }

    /** Sends one call on the open stream (opening one if needed); {@code caller} hears its answer or failure. */
    void send(ExpertBatchRequest request, StreamObserver<ExpertBatchResponse> caller, long timeoutNanos, ScheduledExecutorService timers) {
        Open o;
        long id;
        boolean endedAtOpen;
        Pending p = new Pending(caller);
        synchronized (this) {
            if (open == null || open.ended) open = new Open();
            o = open;
            id = ++nextId;
            o.inFlight.put(id, p);
            o.requests.onNext(ExpertStreamRequest.newBuilder().setCallId(id).setRequest(request)
                    .setTimeoutMicros(TimeUnit.NANOSECONDS.toMicros(timeoutNanos)).build());
            endedAtOpen = o.ended;
        }
        if (endedAtOpen) {
            // The stream failed while it opened: with the channel in TRANSIENT_FAILURE (the pod is gone) gRPC fails the
            // call inside its start, on this thread, before this call was in the map for end() to fail it. Failing it
            // here (outside the lock: the caller retries on another replica's stream) spares it its whole deadline.
            o.fail(id, o.endStatus);
            return;
        }
        p.timer = timers.schedule(() -> o.fail(id, Status.DEADLINE_EXCEEDED.withDescription("no answer on the call stream within "
                + TimeUnit.NANOSECONDS.toMillis(timeoutNanos) + " ms")), timeoutNanos, TimeUnit.NANOSECONDS);
    }

    /** Ends the open stream, if any, once the pod has answered what is in flight (a draining pod, shutdown). */
    void close() {
        synchronized (this) {
            if (open != null && !open.ended) open.requests.onCompleted();
            open = null;
        }
    }

    /** Calls in flight on the open stream (tests). */
    synchronized int inFlight() {
        return open == null ? 0 : open.inFlight.size();
    }

    private static final class Pending {
        final StreamObserver<ExpertBatchResponse> caller;
        volatile ScheduledFuture<?> timer;

        Pending(StreamObserver<ExpertBatchResponse> caller) {
            this.caller = caller;
        }
    }

    /** One opened stream and the calls in flight on it. */
    private final class Open implements StreamObserver<ExpertStreamResponse> {
        final Map<Long, Pending> inFlight = new ConcurrentHashMap<>();
        final StreamObserver<ExpertStreamRequest> requests;
        /** Set under the outer lock once the stream broke or ended: nothing more is put in {@link #inFlight}. */
        volatile boolean ended;
        /** Why it ended, for the calls that find it so; written before {@link #ended}. */
        volatile Status endStatus = Status.UNAVAILABLE;

        Open() {
            requests = stub.computeExpertsStream(this);
        }

        @Override
        public void onNext(ExpertStreamResponse m) {
            Pending p = inFlight.remove(m.getCallId());
            if (p == null) return; // past its deadline: the caller has already moved on
            ScheduledFuture<?> t = p.timer;
            if (t != null) t.cancel(false);
            if (m.getStatusCode() == 0) {
                p.caller.onNext(m.getResponse());
                p.caller.onCompleted();
            } else {
                p.caller.onError(Status.fromCodeValue(m.getStatusCode()).withDescription(m.getStatusDescription()).asRuntimeException());
            }
        }

        void fail(long id, Status status) {
            Pending p = inFlight.remove(id);
            if (p == null) return;
            ScheduledFuture<?> t = p.timer;
            if (t != null) t.cancel(false);
            p.caller.onError(status.asRuntimeException());
        }

        @Override
        public void onError(Throwable t) {
            Status s = Status.fromThrowable(t);
            end(Status.UNAVAILABLE.withDescription("the call stream to " + address + " broke: " + s.getCode()
                    + (s.getDescription() == null ? "" : " (" + s.getDescription() + ")")));
        }

        @Override
        public void onCompleted() {
            end(Status.UNAVAILABLE.withDescription("the pod " + address + " ended the call stream"));
        }

        private void end(Status status) {
            synchronized (ExpertCallStream.this) {
                endStatus = status;
                ended = true;
                if (open == this) open = null;
            }
            for (Long id : inFlight.keySet()) fail(id, status);
        }
    }
}
