package io.moeserve.runtime.expert;

/**
 * No replica of an expert group could compute its share of a MoE layer call. Carries the rows of the step whose
 * tokens needed the group, so that a batching scheduler can fail just those sequences and go on with the others.
 */
public final class ExpertUnavailableException extends RuntimeException {
    private final int layer;
    private final String group;
    private final int[] rows;
    private final int[] groups;

    public ExpertUnavailableException(int layer, String group, int[] rows, String message, Throwable cause) {
        this(layer, group, rows, new int[0], message, cause);
    }

    /**
     * @param groups indices, in the dispatcher's group order, of every group that could not compute its batch; the
     *               other groups' batches hold their answers, which is what lets a caller mask just the failed groups
     */
    public ExpertUnavailableException(int layer, String group, int[] rows, int[] groups, String message, Throwable cause) {
        super(message, cause);
        this.layer = layer;
        this.group = group;
        this.rows = rows.clone();
        this.groups = groups.clone();
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

    /** Indices of the groups that failed, in group order; empty when the dispatcher did not say. */
    public int[] groups() {
        return groups.clone();
    }
}
