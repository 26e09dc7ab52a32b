package io.moeserve.runtime.expert;

/**
 * Told when a layer call masked (token, expert) pairs because their expert group could not compute them (degraded
 * mode, {@link PartitionedExpertExecutor}): for the metrics and for the sequences that own the tokens.
 */
@FunctionalInterface
public interface ExpertMaskListener {
    /**
     * Called on the stepping thread, once per failed group and token, after the call's output is final.
     *
     * @param group index of the group in the executor's group order
     * @param row   the step row of the token
     * @param pairs how many of the token's (token, expert) pairs the group held, all masked
     */
    void onMasked(int layer, int group, int row, int pairs);
}
