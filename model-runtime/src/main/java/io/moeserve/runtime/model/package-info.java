/**
 * The forward pass: {@link io.moeserve.runtime.model.MoeModel} loads a checkpoint and runs steps of any mix of
 * prompt and decode tokens ({@link io.moeserve.runtime.model.StepBatch}) against a paged
 * {@link io.moeserve.runtime.model.KvCache}; {@link io.moeserve.runtime.model.ModelOptions} say how (with the
 * efficiency switches {@link io.moeserve.runtime.model.ExpertSkipping} and
 * {@link io.moeserve.runtime.model.PrunedExperts}), and a {@link io.moeserve.runtime.model.RoutingObserver} sees every
 * routing decision. Those are this package's API.
 *
 * <p>Internal: the MoE block's parts ({@link io.moeserve.runtime.model.MoeBlock}, {@link io.moeserve.runtime.model.Gate}
 * and its shared implementations, {@link io.moeserve.runtime.model.SharedExpert},
 * {@link io.moeserve.runtime.model.RouterSideExperts}, the gates' scratch and selection helpers) are public only
 * because the model families, in their own packages, assemble them; nothing outside the model module uses them.
 * Attention, the dense MLP, the buffers and the RoPE table are package-private.
 */
package io.moeserve.runtime.model;
