package io.moeserve.runtime.family;

import io.moeserve.runtime.expert.ExpertExecutor;
import io.moeserve.runtime.model.MoeBlock;

/** Builds the MoE block of each MoE layer of one model, its tensors taken from the checkpoint being loaded. */
@FunctionalInterface
public interface MoeLayers {
    /** The block of {@code layer}, whose routed experts run through {@code routed}. */
    MoeBlock block(int layer, ExpertExecutor routed);
}
