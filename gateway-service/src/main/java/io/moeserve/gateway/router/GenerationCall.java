package io.moeserve.gateway.router;

import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.proto.router.v1.GenerateResponse;

/**
 * One router Generate call with manual flow control: a message is asked for only when the one before it has been
 * handed on, so a slow HTTP client slows the router stream instead of filling the gateway's memory; and
 * cancellation, so that a client that goes away (or a stop string) frees the router's sequence at once.
 */
public final class GenerationCall implements ClientResponseObserver<GenerateRequest, GenerateResponse> {
    private final GenerationListener listener;
    private volatile ClientCallStreamObserver<GenerateRequest> call;
    private volatile boolean cancelled;

    public GenerationCall(GenerationListener listener) {
        this.listener = listener;
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
    }

    @Override
    public void onNext(GenerateResponse value) {
        listener.onResponse(value);
    }

    @Override
    public void onError(Throwable t) {
        listener.onError(t);
    }

    @Override
    public void onCompleted() {
        listener.onCompleted();
    }
}
