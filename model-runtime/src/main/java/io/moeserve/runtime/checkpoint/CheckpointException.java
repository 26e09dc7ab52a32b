package io.moeserve.runtime.checkpoint;

/**
 * A checkpoint that cannot be read or written as asked; the message always names the file (and the tensor, where
 * there is one), because "bad header" without a path is useless across hundreds of shards.
 */
public class CheckpointException extends RuntimeException {

    public CheckpointException(String message) {
        super(message);
    }

    public CheckpointException(String message, Throwable cause) {
        super(message, cause);
    }
}
