package io.moeserve.runtime.expert;

/**
 * No replica of an expert group could compute its share of a MoE layer call. Carries the rows of the step whose
 * tokens needed the group, so that a batching scheduler can fail just those sequences and go on with the others.
 */
public final class ExpertUnavailableException extends RuntimeException {
    private final int layer;
    private final String group;
    private final int[] rows;

    public ExpertUnavailableException(int layer, String group, int[] rows, String message, Throwable cause) {
        super(message, cause);
        this.layer = layer;
        this.group = group;
        this.rows = rows.clone();
    }

    public int layer() {
        return layer;
    }

    /** The expert group's name. */
    public String group() {
        return group;
    }

    /** Step rows (token indices of the forward step) whose tokens were routed to the group. */
    public int[] rows() {
        return rows.clone();
    }
}
