package io.moeserve.gateway.router;

import io.moeserve.proto.router.v1.GenerateResponse;

/** Receives one router Generate stream; calls are serialised by gRPC. */
public interface GenerationListener {
    void onResponse(GenerateResponse response);

    void onError(Throwable error);

    void onCompleted();
}
