package io.moeserve.runtime.model;

/**
 * The tokens of one forward step: any mix of prompt chunks and decode tokens from many sequences.
 *
 * <p>Each token names its sequence's KV-cache slot and its position. Tokens of one sequence must appear in
 * ascending position order, and the slot must have room reserved for them. Logits are computed only for the
 * tokens marked as wanting them (the last prompt token, decode tokens), in the order they were added.
 *
 * <p>Each {@link #clear} starts a new step with the next {@link #id}, which travels with the step's expert calls
 * (to expert pods, for their logs). Filled and read by one thread, the one running the step.
 */
public final class StepBatch {
    private final int capacity;
    final int[] tokens;
    final int[] slots;
    final int[] positions;
    final int[] logitRows;
    final float[] skipThresholds;
    int size;
    int logitCount;
    private long id;

    public StepBatch(int capacity) {
        this.capacity = capacity;
        this.tokens = new int[capacity];
        this.slots = new int[capacity];
        this.positions = new int[capacity];
        this.logitRows = new int[capacity];
        this.skipThresholds = new float[capacity];
    }

    /** Empties the batch for the next step. */
    public void clear() {
        size = 0;
        logitCount = 0;
        id++;
    }

    /** Empties the batch to hold a micro-batch of {@code step}: a subset of its rows, under its id. */
    void clearFor(StepBatch step) {
        size = 0;
        logitCount = 0;
        id = step.id;
    }

    /** This step's number: how many steps this batch has started (1 for the first). */
    public long id() {
        return id;
    }

    /** Adds a token that skips experts as the model's {@link ExpertSkipping} says; returns its row in the step. */
    public int add(int token, int slot, int position, boolean wantLogits) {
        return add(token, slot, position, wantLogits, Float.NaN);
    }

    /**
     * Adds a token; returns its row index in the step.
     *
     * @param skipThreshold its sequence's expert skip threshold in [0, 1] (0 = no skipping), or NaN for the
     *                      model's setting
     */
    public int add(int token, int slot, int position, boolean wantLogits, float skipThreshold) {
        if (size == capacity) throw new IllegalStateException("step batch is full (" + capacity + " tokens)");
        skipThresholds[size] = skipThreshold;
        tokens[size] = token;
        slots[size] = slot;
        positions[size] = position;
        if (wantLogits) logitRows[logitCount++] = size;
        return size++;
    }

    public int size() {
        return size;
    }

    public int capacity() {
        return capacity;
    }

    public int logitCount() {
        return logitCount;
    }

    public int token(int i) {
        return tokens[i];
    }

    public int slot(int i) {
        return slots[i];
    }

    public int position(int i) {
        return positions[i];
    }

    /** Token i's own expert skip threshold, NaN where it takes the model's. */
    public float skipThreshold(int i) {
        return skipThresholds[i];
    }

    public int remaining() {
        return capacity - size;
    }
}
