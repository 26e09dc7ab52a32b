package io.moeserve.runtime.generate;

import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.RoutingObserver;
import io.moeserve.runtime.model.StepBatch;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Runs a fixed set of requests to completion on one model and one KV cache, through the same
 * {@link GenerationLoop} the router's engine runs (which adds arrivals, deadlines and faults between steps): the
 * requests are admitted in order as their prompts fit the KV cache (all at once when it is large enough), the
 * sequences the loop preempts are admitted again before the rest, prompts are prefilled in chunks of the step size
 * while the others decode, and each sequence leaves the batch, freeing its cache, when it ends. For the moe
 * command, reference traces and tests.
 */
public final class Generator {
    private final MoeModel model;
    private final KvCache cache;

    public Generator(MoeModel model, KvCache cache) {
        this.model = model;
        this.cache = cache;
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
        GenerationLoop loop = new GenerationLoop(model, cache, n, observer);
        List<Request> sequences = new ArrayList<>(n);
        ArrayDeque<Sequence> waiting = new ArrayDeque<>(n);
        try {
            for (int s = 0; s < n; s++) {
                Request sequence = new Request(s, requests.get(s), model.config().vocabSize(), listener, promptLogits);
                sequences.add(sequence);
                waiting.add(sequence);
            }
            // Admitted by what their prompts take now; preempted ones come back first, when their tokens fit again.
            while (!waiting.isEmpty() || !loop.running().isEmpty()) {
                while (!waiting.isEmpty() && (loop.running().isEmpty() || loop.fits(waiting.peekFirst(), 0))) {
                    if (!loop.admit(waiting.peekFirst())) throw new IllegalStateException("no free KV-cache slot");
                    waiting.pollFirst();
                }
                loop.step();
                for (Sequence s; (s = loop.pollPreempted()) != null; ) waiting.addFirst(s);
            }
        } finally {
            for (Request s : sequences) loop.end(s);
        }
        List<GenerationResult> results = new ArrayList<>(n);
        for (Request s : sequences) results.add(new GenerationResult(s.prompt(), s.generated(), s.finishReason()));
        return results;
    }

    /** One request as the loop runs it: its tokens go to the listener, its prompt's logits to promptLogits. */
    private static final class Request extends Sequence {
        private final int index;
        private final TokenListener listener;
        private final float[][] promptLogits;

        Request(int index, GenerationRequest r, int vocab, TokenListener listener, float[][] promptLogits) {
            super(r.promptTokens(), r.maxNewTokens(), new Sampler(r.sampling(), vocab, r.promptTokens()), r.stopTokenIds());
            this.index = index;
            this.listener = listener;
            this.promptLogits = promptLogits;
        }

        @Override
        protected void onLogits(float[] logits, int offset, int vocab) {
            if (promptLogits != null && generatedCount() == 0) promptLogits[index] = Arrays.copyOfRange(logits, offset, offset + vocab);
        }

        @Override
        protected void onToken(int token, FinishReason finish) {
            listener.onToken(index, token);
        }
    }

    /**
     * Runs one prompt through the model in chunks of the step size, into a slot the caller holds, leaving the KV
     * cache filled; no token is sampled. For benchmarks and tests that time or inspect the forward pass alone.
     */
    public void prefill(int[] prompt, int slot, RoutingObserver observer) {
        StepBatch batch = new StepBatch(model.maxStepTokens());
        float[] logits = new float[model.config().vocabSize()];
        for (int from = 0; from < prompt.length; from += batch.capacity()) {
            int to = Math.min(prompt.length, from + batch.capacity());
            batch.clear();
            for (int p = from; p < to; p++) batch.add(prompt[p], slot, p, p == prompt.length - 1);
            model.forward(batch, cache, logits, observer);
        }
    }
}
