package io.moeserve.gateway;

import io.quarkus.runtime.configuration.MemorySize;
import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

/** The gateway's own settings ({@code moe.gateway.*}). */
@ConfigMapping(prefix = "moe.gateway")
public interface GatewaySettings {

    /**
     * API keys accepted as {@code Authorization: Bearer <key>} on {@code /v1/*}. Unset: no authentication.
     */
    Optional<List<String>> apiKeys();

    /** Longest prompt accepted, in tokens. Unset: the router's max_context. */
    OptionalInt maxPromptTokens();

    /**
     * Bytes of request bodies over 64 KiB the gateway holds at once (RequestBodyReader reads it); a body past it gets
     * 429 with Retry-After. Unset: a sixty-fourth of the heap (a body becomes several times its size).
     */
    Optional<MemorySize> bodyMemory();

    /**
     * Longest a generation may take, queueing in the router included: the gRPC deadline of the router call and
     * the router's deadline_unix_millis. A request past it ends with 504 (or an error event once streaming).
     */
    @WithDefault("10m")
    Duration requestTimeout();

    /** How long /v1/models, validation and readiness wait for the router's DescribeModel answer. */
    @WithDefault("5s")
    Duration describeTimeout();

    /** How long a DescribeModel answer is reused before it is asked for again. */
    @WithDefault("30s")
    Duration describeCacheTtl();

    /**
     * How chat completions' output is read into reasoning_content, content and tool_calls: {@code auto} by the
     * chat template's markers (gpt-oss's harmony when it writes {@code <|channel|>} and the tokenizer has
     * harmony's special tokens, Qwen's when it writes {@code <tool_call>}, DeepSeek's when it writes {@code
     * <｜tool▁calls▁begin｜>}, Mistral's when it writes {@code [TOOL_CALLS]}, Llama 3.x's JSON calls when it writes
     * {@code <|python_tag|>} or Llama 3.1's JSON tool instructions), else plain text; {@code harmony} (the tokenizer
     * must have the tokens), {@code qwen}, {@code deepseek}, {@code mistral} or {@code llama3-json} always ({@code
     * llama3-json} for requests that send tools); {@code none} never (the text as generated, special tokens skipped).
     */
    @WithDefault("auto")
    OutputParser outputParser();

    /** The values of {@link #outputParser()}. */
    enum OutputParser { AUTO, HARMONY, QWEN, DEEPSEEK, MISTRAL, LLAMA3_JSON, NONE }

    /**
     * Whether {@code <think>...</think>} goes to reasoning_content with the qwen and deepseek parsers (as vLLM's
     * --reasoning-parser qwen3 / deepseek_r1); false leaves think blocks in content. Harmony's analysis channel is
     * reasoning either way.
     */
    @WithDefault("true")
    boolean reasoning();

    /** Which routers the gateway sends generations to ({@code moe.gateway.router.*}). */
    RouterTargets router();

    /** Request migration ({@code moe.gateway.migration.*}). */
    Migration migration();

    /** The routers, and how the gateway balances over them and retries. */
    interface RouterTargets {
        /**
         * Each router's gRPC address as {@code host:port}, or a {@code dns:///name:port} whose every address is a
         * router (a Kubernetes headless Service), resolved again every {@link #resolvePeriod()}. Unset: the one
         * router at {@code quarkus.grpc.clients.router.host} and {@code .port}.
         */
        Optional<List<String>> targets();

        /** How often a dns:/// target is resolved again (routers come and go with the Deployment). */
        @WithDefault("10s")
        Duration resolvePeriod();

        /** How often each router is asked DescribeModel; one that does not answer gets no new calls until it does. */
        @WithDefault("2s")
        Duration healthPeriod();

        /**
         * Router calls one choice may make: a call that fails because its router went away (UNAVAILABLE, or
         * cancelled by the router) is started again on a router it has not tried, before its first token always,
         * after it when {@code moe.gateway.migration.enabled}.
         */
        @WithDefault("3")
        int maxAttempts();

        /**
         * Prefix affinity: prompts whose first this many tokens are the same prefer the same router (rendezvous
         * hashing over the routers' addresses), where the router's prefix cache holds their keys and values already
         * (later turns of a conversation, the n choices of a request). 32 is two of the router's KV-cache blocks;
         * shorter prompts, and 0, use least outstanding requests alone.
         */
        @WithDefault("32")
        int prefixAffinityTokens();

        /**
         * How many more generations in flight than the least loaded ready router the preferred router may have and
         * still be chosen; beyond it, least outstanding requests wins, so one hot prefix cannot pile onto one router.
         */
        @WithDefault("4")
        int prefixAffinitySlack();
    }

    /** Request migration. */
    interface Migration {
        /**
         * Whether a choice whose router goes away mid-generation resumes on another router, which prefills the
         * prompt and the tokens generated so far and continues the same output (exact for greedy and for seeded
         * sampling: router.proto's resumed_output_tokens). False: the request fails, as before.
         */
        @WithDefault("true")
        boolean enabled();
    }
}
