package io.moeserve.tokenizer;

import java.io.IOException;

/** A tokenizer file that exists but cannot be used (malformed JSON, unsupported content); the message names it. */
public class TokenizerFormatException extends IOException {

    public TokenizerFormatException(String message) {
        super(message);
    }

    public TokenizerFormatException(String message, Throwable cause) {
        super(message, cause);
    }
}
