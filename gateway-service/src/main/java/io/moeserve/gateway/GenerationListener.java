package io.moeserve.gateway;

import io.moeserve.proto.router.v1.GenerateResponse;

/** Receives one router Generate stream; calls are serialised by gRPC. */
interface GenerationListener {
    void onResponse(GenerateResponse response);

    void onError(Throwable error);

    void onCompleted();
}
