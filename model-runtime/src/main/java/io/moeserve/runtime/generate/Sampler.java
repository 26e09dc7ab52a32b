package io.moeserve.runtime.generate;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Picks one sequence's next tokens from logits: penalties, then temperature, top-k, top-p and min-p (the order
 * of transformers' processors and warpers), then a draw from a per-sequence seeded generator.
 *
 * <p>Everything is sized to the vocabulary once. Top-p needs the kept tokens in probability order; only tokens
 * that can possibly be kept are sorted (a token with probability below (1 − p)/(V − 1) can never be part of the
 * nucleus), so the sort is over a handful of candidates rather than the whole vocabulary.
 */
public final class Sampler {
    private final SamplingParams params;
    private final int vocab;
    private final SplittableRandom random;
    private final int[] outputCounts;   // occurrences in the output so far (frequency / presence)
    private final boolean[] seen;       // in prompt or output (repetition penalty)
    private final float[] probs;
    private final int[] candidates;
    private final long[] sortKeys;

    public Sampler(SamplingParams params, int vocab, int[] promptTokens) {
        this.params = params;
        this.vocab = vocab;
        long seed = params.seed() != null ? params.seed() : new SplittableRandom().nextLong();
        this.random = new SplittableRandom(seed);
        this.outputCounts = new int[vocab];
        this.seen = new boolean[vocab];
        if (promptTokens != null) for (int t : promptTokens) if (t >= 0 && t < vocab) seen[t] = true;
        this.probs = new float[vocab];
        this.candidates = new int[vocab];
        this.sortKeys = new long[vocab];
    }

    /** Records a generated token (for penalties). */
    public void accept(int token) {
        outputCounts[token]++;
        seen[token] = true;
    }

    /**
     * Request migration: takes {@code count} tokens from {@code tokens[from, from + count)} as output this sequence
     * already generated elsewhere, as if this sampler had sampled them: they count for the penalties, and the seeded
     * generator skips the one draw each sampled token took ({@link #sample} draws once per token unless greedy), so
     * the next draw is the one an uninterrupted sequence would make.
     */
    public void resume(int[] tokens, int from, int count) {
        for (int i = from; i < from + count; i++) {
            accept(tokens[i]);
            if (!params.greedy()) random.nextDouble();
        }
    }

    /** Chooses the next token from {@code logits[off, off + V)}; the logits are modified in place. */
    public int sample(float[] logits, int off) {
        applyPenalties(logits, off);
        if (params.greedy()) return argmax(logits, off);
        float invT = 1f / params.temperature();
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < vocab; i++) {
            float l = logits[off + i] * invT;
            logits[off + i] = l;
            if (l > max) max = l;
        }
        float kth = params.topK() > 0 && params.topK() < vocab ? kthLargest(logits, off, params.topK()) : Float.NEGATIVE_INFINITY;
        double sum = 0;
        for (int i = 0; i < vocab; i++) {
            float l = logits[off + i];
            float p = l >= kth ? (float) Math.exp(l - max) : 0f;
            probs[i] = p;
            sum += p;
        }
        float inv = (float) (1.0 / sum);
        float pmax = 0f;
        for (int i = 0; i < vocab; i++) {
            probs[i] *= inv;
            if (probs[i] > pmax) pmax = probs[i];
        }
        int n = 0;
        double total = 0;
        if (params.topP() < 1f) {
            float floor = (1f - params.topP()) / Math.max(1, vocab - 1);
            for (int i = 0; i < vocab; i++) {
                if (probs[i] > 0 && probs[i] >= floor) {
                    // Sort descending by probability, ascending id on ties: key = (~probBits << 32) | id.
                    sortKeys[n++] = ((long) (~Float.floatToRawIntBits(probs[i]) & 0x7fffffff) << 32) | i;
                }
            }
            Arrays.sort(sortKeys, 0, n);
            double cumulative = 0;
            int keep = 0;
            for (int j = 0; j < n; j++) {
                int id = (int) sortKeys[j];
                candidates[keep++] = id;
                cumulative += probs[id];
                if (cumulative >= params.topP()) break;
            }
            n = keep;
        } else {
            for (int i = 0; i < vocab; i++) if (probs[i] > 0) candidates[n++] = i;
        }
        float minProb = params.minP() * pmax;
        int kept = 0;
        for (int j = 0; j < n; j++) {
            int id = candidates[j];
            if (probs[id] >= minProb) {
                candidates[kept++] = id;
                total += probs[id];
            }
        }
        double r = random.nextDouble() * total;
        double acc = 0;
        for (int j = 0; j < kept; j++) {
            acc += probs[candidates[j]];
            if (r < acc) return candidates[j];
        }
        return candidates[kept - 1];
    }

    private void applyPenalties(float[] logits, int off) {
        float rep = params.repetitionPenalty();
        float freq = params.frequencyPenalty();
        float pres = params.presencePenalty();
        if (rep == 1f && freq == 0f && pres == 0f) return;
        for (int i = 0; i < vocab; i++) {
            float l = logits[off + i];
            if (rep != 1f && seen[i]) l = l > 0 ? l / rep : l * rep;
            int c = outputCounts[i];
            if (c > 0) l -= freq * c + pres;
            logits[off + i] = l;
        }
    }

    /** Index of the largest logit, lowest index on ties (torch.argmax behaviour). */
    public static int argmax(float[] logits, int off, int vocab) {
        int best = 0;
        float bestValue = logits[off];
        for (int i = 1; i < vocab; i++) {
            if (logits[off + i] > bestValue) {
                bestValue = logits[off + i];
                best = i;
            }
        }
        return best;
    }

    private int argmax(float[] logits, int off) {
        return argmax(logits, off, vocab);
    }

    /** The k-th largest value of logits[off, off + V) by quickselect on a scratch copy. */
    private float kthLargest(float[] logits, int off, int k) {
        float[] a = probs;
        System.arraycopy(logits, off, a, 0, vocab);
        int lo = 0, hi = vocab - 1, target = k - 1;
        while (lo < hi) {
            float pivot = a[(lo + hi) >>> 1];
            int i = lo, j = hi;
            while (i <= j) {
                while (a[i] > pivot) i++;
                while (a[j] < pivot) j--;
                if (i <= j) {
                    float tmp = a[i];
                    a[i] = a[j];
                    a[j] = tmp;
                    i++;
                    j--;
                }
            }
            if (target <= j) hi = j;
            else if (target >= i) lo = i;
            else break;
        }
        return a[target];
    }
}
