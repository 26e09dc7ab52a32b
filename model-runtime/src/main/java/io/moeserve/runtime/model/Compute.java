package io.moeserve.runtime.model;

import io.moeserve.runtime.kernel.MatmulKernels;
import io.moeserve.runtime.kernel.Parallel;

/** What every layer computes with: the matmul kernels, the thread pool, the RoPE table and attention. */
record Compute(MatmulKernels kernels, Parallel parallel, RopeTable rope, AttentionCore attention) {}
