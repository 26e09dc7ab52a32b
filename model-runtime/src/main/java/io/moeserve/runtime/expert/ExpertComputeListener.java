package io.moeserve.runtime.expert;

/** Told after each expert's batched FFN: the per-expert load an expert pod reports (tokens, busy time). */
@FunctionalInterface
public interface ExpertComputeListener {
    /** Called on the computing thread; must not block or allocate. */
    void onExpertComputed(int layer, int expert, int tokens, long nanos);

    ExpertComputeListener NONE = (layer, expert, tokens, nanos) -> { };
}
