package io.moeserve.runtime.generate;

/** Receives each token as it is generated (streaming). */
@FunctionalInterface
public interface TokenListener {
    /** @param sequence index of the request in the batch */
    void onToken(int sequence, int token);

    TokenListener NONE = (sequence, token) -> { };
}
