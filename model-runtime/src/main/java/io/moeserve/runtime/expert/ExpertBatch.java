package io.moeserve.runtime.expert;

import java.util.Arrays;

/**
 * One expert group's share of a MoE layer call: the tokens that have at least one expert in the group, their
 * hidden states, their (expert, weight) pairs for that group, and room for the group's answer.
 *
 * <p>Pairs are kept as {@code k} slots per token, unused slots holding expert -1, which is the layout
 * {@link ExpertExecutor} and {@link LocalExpertExecutor} take, so a group computed in this process needs no
 * conversion. Everything is allocated once, for the largest step; {@link #clear} only resets the size.
 */
public final class ExpertBatch {
    private final int hidden;
    private final int k;
    private final int capacity;
    /** Row of each token in the caller's step. */
    public final int[] rows;
    /** size rows of hidden floats: the experts' input. */
    public final float[] x;
    /** size · k expert ids, -1 for an unused slot. */
    public final int[] experts;
    /** size · k routing weights. */
    public final float[] weights;
    /** size rows of hidden floats: Σ weight · expert(x) per token, written by whoever computes the batch. */
    public final float[] out;
    private int size;
    private int pairs;

    public ExpertBatch(int capacity, int k, int hidden) {
        this.hidden = hidden;
        this.k = k;
        this.capacity = capacity;
        this.rows = new int[capacity];
        this.x = new float[capacity * hidden];
        this.experts = new int[capacity * k];
        this.weights = new float[capacity * k];
        this.out = new float[capacity * hidden];
    }

    public void clear() {
        size = 0;
        pairs = 0;
    }

    /** Tokens in the batch. */
    public int size() {
        return size;
    }

    /** (token, expert) pairs in the batch. */
    public int pairs() {
        return pairs;
    }

    public int k() {
        return k;
    }

    public int hidden() {
        return hidden;
    }

    public int capacity() {
        return capacity;
    }

    /** Index of the batch's last token if it is the caller's step row {@code row}, else -1. */
    int lastTokenIfRow(int row) {
        return size > 0 && rows[size - 1] == row ? size - 1 : -1;
    }

    /** Appends step row {@code row} with its hidden state {@code src[srcOff, srcOff + hidden)}; returns its index. */
    int addToken(int row, float[] src, int srcOff) {
        int i = size++;
        rows[i] = row;
        System.arraycopy(src, srcOff, x, i * hidden, hidden);
        Arrays.fill(experts, i * k, (i + 1) * k, -1);
        return i;
    }

    /** Puts (expert, weight) into the first free slot of token i. */
    void addPair(int i, int expert, float weight) {
        int base = i * k;
        for (int j = 0; j < k; j++) {
            if (experts[base + j] < 0) {
                experts[base + j] = expert;
                weights[base + j] = weight;
                pairs++;
                return;
            }
        }
        throw new IllegalStateException("token " + i + " already has " + k + " experts in this batch");
    }
}
