package io.moeserve.runtime.model;

import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.kernel.Parallel;
import io.moeserve.runtime.kernel.RangeTask;
import io.moeserve.runtime.kernel.Simd;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Scaled dot-product attention of a step's queries over the KV cache, causal and optionally windowed, with
 * optional attention sinks (gpt-oss: a learned logit per head that joins the softmax's maximum and denominator as
 * one more score, but weighs no value, so a head may attend to less than everything).
 *
 * <p>Work is split over (token, head) pairs across all cores. Each pair reads its sequence's cached keys from
 * position {@code start} to its own position (keys of tokens later in the same step are already written but never
 * read, which is what makes one-pass prefill causal), then forms the softmax-weighted sum of values. Scores live
 * in a per-thread scratch row as long as the longest context; nothing is allocated per call.
 */
final class AttentionCore implements RangeTask {
    private static final VectorSpecies<Float> S = Simd.FLOATS;

    private final Parallel parallel;
    private final int maxContext;
    private final ThreadLocal<float[]> scores;

    // Arguments of the call in progress (set by run(), read by the worker chunks).
    private StepBatch batch;
    private KvCache cache;
    private int layer;
    private float[] q;
    private float[] out;
    private int numHeads;
    private int groupSize;
    private int qkDim;
    private int vDim;
    private int keyWidth;
    private int valueWidth;
    private float scale;
    private int window;
    private float[] sinks;

    AttentionCore(Parallel parallel, int maxContext) {
        this.parallel = parallel;
        this.maxContext = maxContext;
        this.scores = ThreadLocal.withInitial(() -> new float[maxContext]);
    }

    /** @param sinks the layer's per-head sink logits, or null for none */
    void run(StepBatch batch, KvCache cache, int layer, float[] q, float[] out, AttentionConfig a, int window,
             float[] sinks) {
        this.batch = batch;
        this.cache = cache;
        this.layer = layer;
        this.q = q;
        this.out = out;
        this.numHeads = a.numHeads();
        this.groupSize = a.numHeads() / a.numKvHeads();
        this.qkDim = a.qkHeadDim();
        this.vDim = a.vHeadDim();
        this.keyWidth = a.keyWidth();
        this.valueWidth = a.valueWidth();
        this.scale = a.softmaxScale();
        this.window = window;
        this.sinks = sinks;
        parallel.forRange(batch.size * numHeads, this);
        this.batch = null;
        this.cache = null;
    }

    @Override
    public void run(int from, int to) {
        float[] s = scores.get();
        float[] keys = cache.keys(layer);
        float[] values = cache.values(layer);
        for (int item = from; item < to; item++) {
            int t = item / numHeads;
            int h = item % numHeads;
            int pos = batch.positions[t];
            int slot = batch.slots[t];
            int kvHead = h / groupSize;
            int start = window > 0 ? Math.max(0, pos - window + 1) : 0;
            int qOff = (t * numHeads + h) * qkDim;
            float max = Float.NEGATIVE_INFINITY;
            for (int j = start; j <= pos; j++) {
                int kOff = cache.keyOffset(slot, j) + kvHead * qkDim;
                float score = dot(q, qOff, keys, kOff, qkDim) * scale;
                s[j - start] = score;
                if (score > max) max = score;
            }
            int count = pos - start + 1;
            double sum = 0;
            if (sinks != null) {
                float sink = sinks[h];
                if (sink > max) max = sink;
                sum = (float) Math.exp(sink - max);
            }
            for (int j = 0; j < count; j++) {
                float e = (float) Math.exp(s[j] - max);
                s[j] = e;
                sum += e;
            }
            float inv = (float) (1.0 / sum);
            int oOff = (t * numHeads + h) * vDim;
            java.util.Arrays.fill(out, oOff, oOff + vDim, 0f);
            for (int j = start; j <= pos; j++) {
                int vOff = cache.valueOffset(slot, j) + kvHead * vDim;
                axpy(s[j - start] * inv, values, vOff, out, oOff, vDim);
            }
        }
    }

    int maxContext() {
        return maxContext;
    }

    static float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        int i = 0;
        FloatVector acc = FloatVector.zero(S);
        int bound = S.loopBound(n);
        for (; i < bound; i += S.length()) {
            acc = FloatVector.fromArray(S, a, aOff + i).fma(FloatVector.fromArray(S, b, bOff + i), acc);
        }
        float sum = Simd.sum(acc);
        for (; i < n; i++) sum += a[aOff + i] * b[bOff + i];
        return sum;
    }

    static void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
        int i = 0;
        int bound = S.loopBound(n);
        FloatVector a = FloatVector.broadcast(S, alpha);
        for (; i < bound; i += S.length()) {
            FloatVector.fromArray(S, x, xOff + i).fma(a, FloatVector.fromArray(S, y, yOff + i)).intoArray(y, yOff + i);
        }
        for (; i < n; i++) y[yOff + i] += alpha * x[xOff + i];
    }
}
