package io.moeserve.runtime.model;

/** One layer's self-attention: reads the normed hidden states, updates the KV cache, writes o_proj's output. */
interface Attention {
    /** Input: {@code b.normed} (n rows); output: {@code b.projected} (n rows of hidden_size). */
    void forward(int layer, StepBatch batch, KvCache cache, ForwardBuffers b, Compute c);
}
