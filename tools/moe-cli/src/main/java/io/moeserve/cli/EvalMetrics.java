package io.moeserve.cli;

/**
 * The numbers {@code moe eval} reports, accumulated one predicted token at a time from rows of raw logits: the
 * candidate's negative log-likelihood of the true next token (perplexity is exp of its mean), and against a
 * baseline's logits for the same position KL(baseline || candidate) of the two next-token distributions and
 * whether their top-1 tokens agree.
 *
 * <p>Everything is in double precision with the log-sum-exp shift, so a logit row of any scale is safe; nothing is
 * allocated per token. Ties for the top token go to the lower id, as an argmax over the row does.
 */
final class EvalMetrics {
    private long tokens;
    private double nll;
    private double kl;
    private long agreements;

    /** Adds one prediction of the candidate alone: its row of {@code vocab} logits at {@code off}, the true next token. */
    void add(float[] logits, int off, int vocab, int target) {
        nll += logSumExp(logits, off, vocab) - logits[off + target];
        tokens++;
    }

    /** Adds one prediction with the baseline's row for the same position. */
    void add(float[] logits, int off, float[] baseline, int baselineOff, int vocab, int target) {
        add(logits, off, vocab, target);
        kl += klDivergence(baseline, baselineOff, logits, off, vocab);
        if (argmax(baseline, baselineOff, vocab) == argmax(logits, off, vocab)) agreements++;
    }

    long tokens() {
        return tokens;
    }

    double meanNll() {
        return nll / tokens;
    }

    double perplexity() {
        return Math.exp(meanNll());
    }

    double meanKl() {
        return kl / tokens;
    }

    double top1Agreement() {
        return (double) agreements / tokens;
    }

    static double logSumExp(float[] x, int off, int n) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) max = Math.max(max, x[off + i]);
        double sum = 0;
        for (int i = 0; i < n; i++) sum += Math.exp(x[off + i] - max);
        return max + Math.log(sum);
    }

    /** KL(p || q) = Σ p·(log p − log q) for p = softmax(a), q = softmax(b); zero-probability terms of p add nothing. */
    static double klDivergence(float[] a, int aOff, float[] b, int bOff, int n) {
        double lseA = logSumExp(a, aOff, n);
        double lseB = logSumExp(b, bOff, n);
        double sum = 0;
        for (int i = 0; i < n; i++) {
            double logP = a[aOff + i] - lseA;
            double p = Math.exp(logP);
            if (p > 0) sum += p * (logP - (b[bOff + i] - lseB));
        }
        return Math.max(0, sum); // rounding can leave -1e-17 for identical rows
    }

    static int argmax(float[] x, int off, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) if (x[off + i] > x[off + best]) best = i;
        return best;
    }

    /**
     * Perplexity of the unigram model fitted to the token frequencies of {@code fitted} (the whole text), over the
     * predicted tokens evaluated[1..] (a prefix of it, or all): the best a model ignoring context does on this text,
     * the bar a trained model must clear.
     */
    static double unigramPerplexity(int[] fitted, int[] evaluated, int vocab) {
        long[] counts = new long[vocab];
        for (int id : fitted) counts[id]++;
        double nll = 0;
        for (int i = 1; i < evaluated.length; i++) {
            if (counts[evaluated[i]] == 0) throw new IllegalArgumentException("token " + evaluated[i] + " is not in the fitted text");
            nll -= Math.log((double) counts[evaluated[i]] / fitted.length);
        }
        return Math.exp(nll / (evaluated.length - 1));
    }
}
