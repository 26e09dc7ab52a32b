package io.moeserve.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.expert.ExpertResidency;
import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.RoutingObserver;
import io.moeserve.runtime.model.StepBatch;
import io.moeserve.tokenizer.HfTokenizer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * `moe eval DIR --text FILE`: how well a checkpoint predicts a text, and how far it is from a baseline.
 *
 * <p>The text is tokenized with DIR's tokenizer (no special tokens) and cut into windows: window w feeds tokens
 * [w·W, (w+1)·W) as a fresh sequence from position 0 and predicts each following token, so every token but the
 * first is predicted exactly once, with between 0 and W−1 tokens of context (teacher forcing; W = --window). This is
 * also how tools/eval-model/train.py measures held-out perplexity, so the two figures can be compared.
 *
 * <p>With --baseline, a second checkpoint (or the same directory) runs the same windows; the model options that
 * RuntimeOptions defines apply only to the candidate DIR, the baseline gets every option's default, with the same
 * threads, context and step size. So {@code moe eval DIR --baseline DIR --some-switch} measures what the switch
 * costs. Both models run one window at a time and keep only that window's logits: memory does not grow with the text.
 */
@Command(name = "eval", description = "Perplexity of a checkpoint on a text; with --baseline, KL divergence and top-1 agreement.")
final class EvalCommand implements Callable<Integer> {
    @Parameters(index = "0", description = "Checkpoint directory (the candidate; the model options below apply to it).")
    Path dir;

    @Option(names = "--text", required = true, description = "UTF-8 text to predict (e.g. tools/eval-model/heldout.txt).")
    Path text;

    @Option(names = "--window", defaultValue = "256", description = "Tokens per window (context is reset between windows); default ${DEFAULT-VALUE}.")
    int window;

    @Option(names = "--max-tokens", description = "Evaluate only the text's first N tokens.")
    Integer maxTokens;

    @Option(names = "--baseline", description = "Baseline checkpoint directory (may be DIR itself), run with default model options.")
    Path baseline;

    @Option(names = "--routing-stats", description = "Write the candidate's per (layer, expert) token count and mean gate weight to this JSON file.")
    Path routingStats;

    @Option(names = "--json", description = "Print the results as one JSON object.")
    boolean json;

    @Mixin
    RuntimeOptions runtime;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        if (window < 1) throw new IllegalArgumentException("--window must be at least 1");
        int[] all;
        try (HfTokenizer tokenizer = HfTokenizer.load(dir)) {
            all = tokenizer.encode(Files.readString(text, StandardCharsets.UTF_8));
        }
        int[] ids = maxTokens == null ? all : Arrays.copyOf(all, Math.min(all.length, maxTokens));
        if (ids.length < 2) throw new IllegalArgumentException("the text has fewer than two tokens");
        ObjectMapper mapper = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        EvalMetrics metrics = new EvalMetrics();
        RoutingCounts routing;
        long start = System.nanoTime();
        try (MoeModel model = MoeModel.load(dir, runtime.modelOptions(dir));
             MoeModel base = baseline == null ? null : MoeModel.load(baseline, baselineOptions().modelOptions(baseline))) {
            int vocab = model.config().vocabSize();
            if (base != null && base.config().vocabSize() != vocab) {
                throw new IllegalArgumentException("the baseline's vocabulary (" + base.config().vocabSize() + ") differs from DIR's ("
                        + vocab + ")");
            }
            for (int id : all) {
                if (id >= vocab) throw new IllegalArgumentException("token id " + id + " is outside the model's vocabulary " + vocab);
            }
            routing = new RoutingCounts(model.config());
            Windows candidate = new Windows(model, window);
            Windows reference = base == null ? null : new Windows(base, window);
            for (int from = 0; from + 1 < ids.length; from += window) {
                int n = Math.min(window, ids.length - 1 - from);
                float[] logits = candidate.run(ids, from, n, routing);
                float[] baseLogits = reference == null ? null : reference.run(ids, from, n, RoutingObserver.NONE);
                for (int i = 0; i < n; i++) {
                    int target = ids[from + i + 1];
                    if (baseLogits == null) metrics.add(logits, i * vocab, vocab, target);
                    else metrics.add(logits, i * vocab, baseLogits, i * vocab, vocab, target);
                }
            }
            double seconds = (System.nanoTime() - start) / 1e9;
            ObjectNode result = mapper.createObjectNode();
            result.put("model", dir.toString());
            result.put("text", text.toString());
            result.put("window", window);
            result.put("tokens", metrics.tokens());
            result.put("mean_nll", metrics.meanNll());
            result.put("perplexity", metrics.perplexity());
            result.put("unigram_perplexity", EvalMetrics.unigramPerplexity(all, ids, vocab));
            result.put("unigram_fitted_on", "the whole text's token frequencies");
            if (base != null) {
                result.put("baseline", baseline.toString());
                result.put("kl_divergence", metrics.meanKl());
                result.put("top1_agreement", metrics.top1Agreement());
            }
            result.put("expert_pairs_per_token", routing.computedPairsPerToken());
            result.put("skipped_pair_share", routing.skippedShare());
            result.put("seconds", seconds);
            ExpertResidency offload = runtime.residency;
            if (offload != null) {
                ObjectNode o = result.putObject("offload");
                o.put("budget_bytes", offload.budgetBytes());
                o.put("hits", offload.hits());
                o.put("misses", offload.misses());
                o.put("hit_rate", offload.hitRate());
                o.put("evictions", offload.evictions());
                o.put("prefetches", offload.prefetches());
                o.put("prefetches_used", offload.prefetchesUsed());
                o.put("prefetches_wasted", offload.prefetchesWasted());
                o.put("resident_bytes", offload.residentBytes());
                o.put("tokens_per_second", metrics.tokens() / seconds);
            }
            if (routingStats != null) {
                mapper.writeValue(routingStats.toFile(), routing.toJson(mapper, dir.toString()));
            }
            print(result, mapper);
        }
        return 0;
    }

    private void print(ObjectNode r, ObjectMapper mapper) throws Exception {
        if (json) {
            System.out.println(mapper.writeValueAsString(r));
            return;
        }
        System.out.printf(Locale.ROOT, "perplexity %.3f over %d predicted tokens (mean NLL %.4f nats, windows of %d)%n",
                r.get("perplexity").asDouble(), r.get("tokens").asLong(), r.get("mean_nll").asDouble(), window);
        System.out.printf(Locale.ROOT, "unigram baseline perplexity %.3f (fitted to the whole text's token frequencies)%n",
                r.get("unigram_perplexity").asDouble());
        if (r.has("baseline")) {
            System.out.printf(Locale.ROOT, "against %s: mean KL(baseline || candidate) %.6f nats, top-1 agreement %.4f%n",
                    baseline, r.get("kl_divergence").asDouble(), r.get("top1_agreement").asDouble());
        }
        System.out.printf(Locale.ROOT, "routed expert pairs computed per token per MoE layer %.4f (%.2f%% of the gates' choices skipped)%n",
                r.get("expert_pairs_per_token").asDouble(), 100 * r.get("skipped_pair_share").asDouble());
        if (r.has("offload")) {
            JsonNode o = r.get("offload");
            System.out.printf(Locale.ROOT, "offload budget %d bytes: hit rate %.4f (%d hits, %d misses), prefetches %d (used %d, wasted %d),"
                    + " %.1f tokens/s%n", o.get("budget_bytes").asLong(), o.get("hit_rate").asDouble(), o.get("hits").asLong(),
                    o.get("misses").asLong(), o.get("prefetches").asLong(), o.get("prefetches_used").asLong(),
                    o.get("prefetches_wasted").asLong(), o.get("tokens_per_second").asDouble());
        }
        System.out.printf(Locale.ROOT, "%.1f s%s%n", r.get("seconds").asDouble(),
                routingStats == null ? "" : ", routing statistics written to " + routingStats);
    }

    /**
     * The runtime options with every switch at its default and only the resources (threads, context, step size)
     * taken from the command line: parsed by picocli like the real ones, so a switch added to RuntimeOptions later
     * is off for the baseline without a change here.
     */
    RuntimeOptions baselineOptions() {
        List<String> args = new ArrayList<>(List.of("--max-context", Integer.toString(runtime.maxContext),
                "--step-tokens", Integer.toString(runtime.stepTokens)));
        if (runtime.threads != null) args.addAll(List.of("--threads", runtime.threads.toString()));
        return CommandLine.populateCommand(new RuntimeOptions(), args.toArray(String[]::new));
    }

    /** Runs windows through one model as fresh sequences, all positions wanting logits; buffers sized once. */
    private static final class Windows {
        private final MoeModel model;
        private final KvCache cache;
        private final StepBatch batch;
        private final float[] logits;
        private final float[] rows;
        private final int chunk;

        Windows(MoeModel model, int window) {
            if (window > model.maxContext()) {
                throw new IllegalArgumentException("--window " + window + " exceeds the model's context " + model.maxContext());
            }
            this.model = model;
            this.chunk = Math.min(window, model.maxStepTokens());
            this.cache = model.newKvCache(window, 1);
            this.batch = new StepBatch(chunk);
            this.logits = new float[window * model.config().vocabSize()];
            this.rows = new float[chunk * model.config().vocabSize()];
        }

        /** Logits of positions 0..n-1 of the window ids[from..from+n), row after row. */
        float[] run(int[] ids, int from, int n, RoutingObserver observer) {
            int vocab = model.config().vocabSize();
            int slot = cache.allocateSequence();
            try {
                for (int done = 0; done < n; done += chunk) {
                    int m = Math.min(chunk, n - done);
                    batch.clear();
                    for (int i = 0; i < m; i++) batch.add(ids[from + done + i], slot, done + i, true);
                    model.forward(batch, cache, rows, observer);
                    System.arraycopy(rows, 0, logits, done * vocab, m * vocab);
                }
            } finally {
                cache.release(slot);
            }
            return logits;
        }
    }
}
