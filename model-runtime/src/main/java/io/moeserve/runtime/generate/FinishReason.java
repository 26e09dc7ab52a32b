package io.moeserve.runtime.generate;

/** Why a sequence stopped generating. */
public enum FinishReason {
    /** A stop token (eos_token_id or a requested stop id) was generated; it is the last output token. */
    STOP,
    /** max_new_tokens or the context limit was reached. */
    LENGTH
}
