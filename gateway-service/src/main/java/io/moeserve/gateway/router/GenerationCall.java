package io.moeserve.gateway.router;

import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.proto.router.v1.GenerateResponse;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One router Generate call with manual flow control: a message is asked for only when the one before it has been
 * handed on, so a slow HTTP client slows the router stream instead of filling the gateway's memory; and
 * cancellation, so that a client that goes away (or a stop string) frees the router's sequence at once. It counts
 * as one of its router's generations in flight from the start to its end, whichever way it ends.
 */
public final class GenerationCall implements ClientResponseObserver<GenerateRequest, GenerateResponse> {
    private final GenerationListener listener;
    private volatile ClientCallStreamObserver<GenerateRequest> call;
    private volatile boolean cancelled;
    private volatile RouterTarget router;
    private final AtomicBoolean released = new AtomicBoolean();

    public GenerationCall(GenerationListener listener) {
        this.listener = listener;
    }

    /** Called by the client before it starts the call on {@code target}. */
    void bind(RouterTarget target) {
        target.inFlight.incrementAndGet();
        router = target;
    }

    /** The router's address, "" before the call is started. */
    public String router() {
        RouterTarget r = router;
        return r == null ? "" : r.address;
    }

    /** The call has ended (or never started): it no longer counts against its router. Idempotent. */
    void release() {
        RouterTarget r = router;
        if (r != null && released.compareAndSet(false, true)) r.inFlight.decrementAndGet();
    }

    @Override
    public void beforeStart(ClientCallStreamObserver<GenerateRequest> requestStream) {
        requestStream.disableAutoRequestWithInitial(1);
        call = requestStream;
    }

    /** Called once the call has started: a cancel that came while it was starting takes effect now. */
    void started() {
        ClientCallStreamObserver<GenerateRequest> c = call;
        if (cancelled && c != null) c.cancel("cancelled while starting", null);
    }

    /** Asks the router for the next message. */
    public void requestNext() {
        ClientCallStreamObserver<GenerateRequest> c = call;
        if (c != null && !cancelled) c.request(1);
    }

    /** Cancels the call (gRPC CANCELLED reaches the router); idempotent. */
    public void cancel(String reason) {
        if (cancelled) return;
        cancelled = true;
        ClientCallStreamObserver<GenerateRequest> c = call;
        if (c != null) c.cancel(reason, null);
        release();
    }

    @Override
    public void onNext(GenerateResponse value) {
        listener.onResponse(value);
    }

    @Override
    public void onError(Throwable t) {
        release();
        RouterTarget r = router;
        // The router is gone or going (killed, draining): no new calls until a probe answers again.
        if (r != null && !cancelled && Status.fromThrowable(t).getCode() == Status.Code.UNAVAILABLE) {
            r.failed(Status.fromThrowable(t).toString());
        }
        listener.onError(t);
    }

    @Override
    public void onCompleted() {
        release();
        listener.onCompleted();
    }
}
