package io.moeserve.runtime.generate;

import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.RoutingObserver;
import io.moeserve.runtime.model.StepBatch;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Generates for a batch of sequences with one model and one KV cache: each prompt is prefilled in as few passes
 * as the step size allows (matrix-matrix products over the whole chunk), then all live sequences decode together,
 * one token each per step, whatever their lengths; finished sequences leave the batch and free their cache.
 *
 * <p>This is the building block of continuous batching (router-service adds arrivals between steps); here the
 * set of sequences is fixed at the start.
 */
public final class Generator {
    private final MoeModel model;
    private final KvCache cache;
    private final int vocab;
    private final StepBatch batch;
    private final float[] logits;

    public Generator(MoeModel model, KvCache cache) {
        this.model = model;
        this.cache = cache;
        this.vocab = model.config().vocabSize();
        this.batch = new StepBatch(model.maxStepTokens());
        this.logits = new float[Math.max(cache.maxSequences(), 1) * vocab];
    }

    public GenerationResult generate(GenerationRequest request) {
        return generate(List.of(request), TokenListener.NONE, RoutingObserver.NONE, null).getFirst();
    }

    /**
     * Runs every request to completion.
     *
     * @param promptLogits if not null, receives (per request) a copy of the logits at the last prompt position
     */
    public List<GenerationResult> generate(List<GenerationRequest> requests, TokenListener listener,
                                           RoutingObserver observer, float[][] promptLogits) {
        int n = requests.size();
        if (n > cache.maxSequences()) throw new IllegalArgumentException(n + " sequences exceed the cache's " + cache.maxSequences() + " slots");
        int[] slots = new int[n];
        Arrays.fill(slots, -1);
        Sampler[] samplers = new Sampler[n];
        int[][] outputs = new int[n][];
        int[] produced = new int[n];
        int[] lengths = new int[n];
        FinishReason[] reasons = new FinishReason[n];
        boolean[] live = new boolean[n];
        try {
            for (int s = 0; s < n; s++) {
                GenerationRequest r = requests.get(s);
                if (r.promptTokens().length >= model.maxContext()) {
                    throw new IllegalArgumentException("prompt of " + r.promptTokens().length + " tokens does not fit the context limit " + model.maxContext());
                }
                slots[s] = cache.allocateSequence();
                if (slots[s] < 0) throw new IllegalStateException("no free KV-cache slot");
                samplers[s] = new Sampler(r.sampling(), vocab, r.promptTokens());
                outputs[s] = new int[r.maxNewTokens()];
            }
            for (int s = 0; s < n; s++) {
                GenerationRequest r = requests.get(s);
                prefill(r.promptTokens(), slots[s], observer);
                lengths[s] = r.promptTokens().length;
                if (promptLogits != null) promptLogits[s] = Arrays.copyOf(logits, vocab);
                live[s] = r.maxNewTokens() > 0;
                if (!live[s]) reasons[s] = FinishReason.LENGTH;
                else live[s] = take(s, r, samplers[s], logits, 0, outputs, produced, reasons, listener, lengths);
            }
            while (true) {
                batch.clear();
                for (int s = 0; s < n; s++) {
                    if (live[s]) batch.add(outputs[s][produced[s] - 1], slots[s], lengths[s] - 1, true);
                }
                if (batch.size() == 0) break;
                model.forward(batch, cache, logits, observer);
                int row = 0;
                for (int s = 0; s < n; s++) {
                    if (!live[s]) continue;
                    live[s] = take(s, requests.get(s), samplers[s], logits, row * vocab, outputs, produced, reasons, listener, lengths);
                    row++;
                    if (!live[s]) {
                        cache.release(slots[s]);
                        slots[s] = -1;
                    }
                }
            }
        } finally {
            for (int slot : slots) if (slot >= 0) cache.release(slot);
        }
        List<GenerationResult> results = new ArrayList<>(n);
        for (int s = 0; s < n; s++) {
            results.add(new GenerationResult(requests.get(s).promptTokens(), Arrays.copyOf(outputs[s], produced[s]), reasons[s]));
        }
        return results;
    }

    /** Samples sequence s's next token from a logits row; returns whether it goes on. */
    private boolean take(int s, GenerationRequest r, Sampler sampler, float[] rowLogits, int off, int[][] outputs,
                         int[] produced, FinishReason[] reasons, TokenListener listener, int[] lengths) {
        int token = sampler.sample(rowLogits, off);
        sampler.accept(token);
        outputs[s][produced[s]++] = token;
        lengths[s]++;
        listener.onToken(s, token);
        if (r.isStop(token)) {
            reasons[s] = FinishReason.STOP;
            return false;
        }
        if (produced[s] >= r.maxNewTokens() || lengths[s] >= model.maxContext()) {
            reasons[s] = FinishReason.LENGTH;
            return false;
        }
        return true;
    }

    /** Runs the prompt through the model in chunks of the step size; leaves the last position's logits in row 0. */
    public void prefill(int[] prompt, int slot, RoutingObserver observer) {
        int step = batch.capacity();
        for (int from = 0; from < prompt.length; from += step) {
            int to = Math.min(prompt.length, from + step);
            batch.clear();
            for (int p = from; p < to; p++) batch.add(prompt[p], slot, p, p == prompt.length - 1);
            model.forward(batch, cache, logits, observer);
        }
    }
}
