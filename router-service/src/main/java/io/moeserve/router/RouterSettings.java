package io.moeserve.router;

import io.quarkus.runtime.configuration.MemorySize;
import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** The router's configuration: continuous batching and admission, and where the routed experts live. */
@ConfigMapping(prefix = "moe.router")
public interface RouterSettings {

    Batching batching();

    PrefixCaching prefixCaching();

    Experts experts();

    ExpertSkipping expertSkipping();

    /**
     * Experts the gates never pick, as if pruned (the runtime's {@code PrunedExperts}: their gate logits are −∞):
     * {@code LAYER:E,E,...} entries joined by {@code ;}, LAYER a layer index or {@code *}. Unset: none.
     */
    Optional<String> prunedExperts();

    /**
     * {@code float} (the default): quantized weights are dequantized exactly; {@code int8}: int8 and int4 matrices
     * multiply with activations quantized to int8 per block of 32 columns (llama.cpp's numerics, the runtime's
     * {@code PanelKernel}), faster but not the same bits. Expert pods say the same with {@code moe.expert.activations}.
     */
    @WithDefault("float")
    String activations();

    /** Continuous batching, the KV-cache budget and admission control. */
    interface Batching {
        /** Most tokens in one forward step: decode tokens of every running sequence plus prefill chunks. */
        @WithDefault("256")
        int maxStepTokens();

        /** Most sequences generating at once. */
        @WithDefault("64")
        int maxSequences();

        /** Heap for keys and values of all sequences, taken in blocks as sequences grow. */
        @WithDefault("256M")
        MemorySize kvCacheMemory();

        /**
         * How the KV cache stores keys and values: {@code f32} (exact) or {@code bf16} (rounded to nearest even as torch
         * casts, half the bytes: the same {@link #kvCacheMemory} holds twice the positions, so admits about twice the
         * sequences). F32 by default, since BF16 changes the logits (BENCHMARKS.md, "KV cache in BF16").
         */
        @WithDefault("f32")
        String kvCacheDtype();

        /**
         * Fraction of the KV cache's blocks admission keeps free: a sequence is admitted when its prompt's blocks fit
         * with this much left (vLLM's watermark, 1% by default), so the running sequences' next blocks rarely force a
         * preemption right after an admission. In [0, 1).
         */
        @WithDefault("0.01")
        double kvCacheWatermark();

        /** Longest sequence (prompt + generated) accepted; capped by the model's max_position_embeddings. */
        @WithDefault("8192")
        int maxContext();

        /** Requests waiting for admission beyond which new ones are refused with RESOURCE_EXHAUSTED. */
        @WithDefault("256")
        int maxQueued();

        /** The retry hint given to refused requests. */
        @WithDefault("1s")
        Duration retryAfter();
    }

    /** Reusing the KV cache's blocks across requests that share a token prefix. */
    interface PrefixCaching {
        /**
         * Whether full KV-cache blocks are shared by the requests whose prompts start with the same tokens (later
         * turns of a conversation, the n choices of one request) and kept, least recently used first out, until the
         * cache needs them. On by default, as in vLLM: a hit computes bit for bit what a cold run computes.
         */
        @WithDefault("true")
        boolean enabled();
    }

    /** Where the routed experts are computed. */
    interface Experts {
        /** {@code local}: inside this process (all-in-one); {@code remote}: in expert pods over gRPC. */
        @WithDefault("local")
        Mode mode();

        /** Version of the expert map; expert pods check it. */
        @WithDefault("1")
        long routingTableVersion();

        /** Expert groups by name (remote mode); partial sums are added in the order of the names. */
        Map<String, Group> groups();

        /** How often pod addresses are re-resolved and pods re-probed. */
        @WithDefault("5s")
        Duration refreshInterval();

        /** Deadline of one expert call: this much, plus {@link #callTimeoutPerToken} per token. */
        @WithDefault("2s")
        Duration callTimeout();

        @WithDefault("2ms")
        Duration callTimeoutPerToken();

        /** Attempts per expert call across the group's replicas (the first included). */
        @WithDefault("3")
        int maxAttempts();

        /** Element type of hidden states on the wire: f32 (exact) or bf16 (half the bytes, rounded). */
        @WithDefault("f32")
        WireFormat wireDtype();

        /**
         * Transport threads shared by every expert pod's channel. One by default: a step sends its calls back to back,
         * and on one thread the second call finds the transport already awake, so a layer pays one wake-up to send
         * rather than one per pod (BENCHMARKS.md); more only when answers arrive faster than one thread unpacks them.
         */
        @WithDefault("1")
        int transportThreads();

        /**
         * How expert calls travel: {@code stream}, one long-lived bidirectional stream per pod carrying every call as a
         * message with an id, or {@code unary}, one gRPC call per (step, layer, pod). Stream by default: it was ahead in
         * every serving row BENCHMARKS.md compares, and the system tests' fault cases pass with it.
         */
        @WithDefault("stream")
        Transport transport();

        /** How long a replica that failed a call is avoided before it is tried again. */
        @WithDefault("2s")
        Duration failureBackoff();

        /**
         * When every pod of an expert group has failed a call: {@code fail} ends the sequences that needed it with
         * UNAVAILABLE (the gateway's 503); {@code mask} drops the group's experts from those tokens' top-k and
         * renormalises the remaining gate weights (Hivemind's semantics, docs/architecture.md), counting each masked
         * pair and telling the client.
         */
        @WithDefault("fail")
        DegradedMode degradedMode();

        /**
         * Micro-batches a step of several sequences is split into (remote mode): each micro-batch's attention runs
         * while another's experts are at the pods (ping-pong), and the output is bit-identical to the unsplit step.
         * 1 (the default) turns it off: where the router and the pods share cores, as on the 2-vCPU VM BENCHMARKS.md
         * measured, splitting loses (each micro-batch streams an expert's weights again, and the overlapped work
         * competes for the same cores); it is for routers and pods on cores of their own.
         */
        @WithDefault("1")
        int microBatches();

        /** Steps of fewer tokens than this are not split: their attention is too short to hide a round trip. */
        @WithDefault("2")
        int microBatchMinTokens();

        /**
         * How long the step busy-polls for the experts' answers before parking: an answer that comes within it costs
         * no wake-up, but the spin holds a core the pods may need. In microseconds (Quarkus durations stop at
         * milliseconds); 0 parks at once.
         */
        @WithDefault("0")
        int spinWaitMicros();
    }

    /**
     * Dynamic expert skipping (MC-MoE's online dynamic pruning, the runtime's {@code ExpertSkipping}): after the gate,
     * a token's routed expert whose weight is below {@link #threshold} × its top expert's weight is neither computed
     * nor sent to a pod, and the surviving weights are renormalised. The deployment's setting, for the requests that
     * do not bring their own {@code skip_threshold}.
     */
    interface ExpertSkipping {
        /** In [0, 1]; 0 = off. */
        @WithDefault("0")
        float threshold();

        /** The fraction of each prompt chunk's most important tokens that keep all their experts. */
        @WithDefault("0.02")
        float protectFraction();
    }

    /** One expert group: what it hosts and where its pods are. */
    interface Group {
        /** Placement spec of the group's experts (docs/architecture.md). */
        String hosts();

        /** Pods: {@code host:port} (one pod each) or {@code dns:name:port} (every address the name resolves to). */
        List<String> endpoints();
    }

    enum Mode { local, remote }

    enum WireFormat { f32, bf16 }

    enum DegradedMode { fail, mask }

    enum Transport { stream, unary }
}
