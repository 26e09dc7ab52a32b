package io.moeserve.runtime.model;

/**
 * Experts computed where the gate runs and never sent to expert pods, because they cost less than sending the
 * hidden state would: MoE++'s zero-computation experts. Internal to the model; called on the forward thread.
 */
public interface RouterSideExperts {
    /**
     * Adds, for each token t < n, {@code Σ weight · expert(x[t])} over the token's slots whose expert id is one of
     * these, to {@code out[t]}.
     *
     * @param experts n·k expert ids as the gate chose them; {@code weights} their combine weights
     */
    void add(int n, int k, float[] x, int[] experts, float[] weights, float[] out);

    RouterSideExperts NONE = (n, k, x, experts, weights, out) -> { };
}
