/**
 * The expert seam: everything the router and the expert pods exchange about routed experts, and nothing else.
 * Which experts a process hosts ({@link io.moeserve.runtime.expert.ExpertSet}, the placement spec of
 * docs/architecture.md, and {@link io.moeserve.runtime.expert.ExpertSelection}); where their weights are
 * ({@link io.moeserve.runtime.expert.ExpertStore}, {@link io.moeserve.runtime.expert.ExpertLoader}); who computes a
 * layer's experts ({@link io.moeserve.runtime.expert.ExpertExecutor}: here with the CPU kernels, or split over
 * expert groups by {@link io.moeserve.runtime.expert.PartitionedExpertExecutor} into
 * {@link io.moeserve.runtime.expert.ExpertBatch}es that an {@link io.moeserve.runtime.expert.ExpertBatchDispatcher}
 * sends to pods); and how that fails ({@link io.moeserve.runtime.expert.ExpertUnavailableException}).
 */
package io.moeserve.runtime.expert;
