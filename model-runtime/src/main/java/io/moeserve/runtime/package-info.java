/**
 * The model module: a Mixture-of-Experts language model from a Hugging Face checkpoint, computed on the CPU.
 *
 * <p>What the services use: {@link io.moeserve.runtime.model.MoeModel} and its step types (the router), the expert
 * seam {@link io.moeserve.runtime.expert} (router and expert pods), {@link io.moeserve.runtime.generate} (the
 * router's engine, the moe command), {@link io.moeserve.runtime.config} (every reader of config.json, the placement
 * planner among them), and the kernels' entry points. The packages, bottom up: {@code tensor} (dtypes, views of
 * mapped memory), {@code checkpoint} (safetensors), {@code kernel} (matrix products and vector math),
 * {@code config} (config.json), {@code family} (one package per model family), {@code model} (the forward pass),
 * {@code expert} (where routed experts run), {@code generate} (sampling and the generation loop), {@code synthetic}
 * (checkpoints with random weights for tests and benchmarks).
 */
package io.moeserve.runtime;
