package io.moeserve.runtime.config;

/**
 * What config.json says about a family's gating function (selection rule, renormalisation, scaling, groups). Each
 * gate defines its own record; the family that reads config.json creates it and the same family builds the gate
 * from it.
 */
public interface GateConfig {
    /** A short description for {@code moe inspect}, e.g. "softmax top-k, renormalised". */
    String describe();
}
