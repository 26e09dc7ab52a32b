/**
 * The model families this runtime computes: {@link io.moeserve.runtime.family.Architecture} is the registry
 * (config.json's {@code architectures[0]} to a {@link io.moeserve.runtime.family.ModelFamily}), and each family's
 * package holds its config reading, tensor layout, gate and MoE block assembly. The family classes are public so
 * that the registry can name them; everything else reaches a family through {@code Architecture.family()}.
 * {@link io.moeserve.runtime.family.TensorLayout} is the layout every family shares.
 */
package io.moeserve.runtime.family;
