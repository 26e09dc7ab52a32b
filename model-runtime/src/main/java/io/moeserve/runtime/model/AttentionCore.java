package io.moeserve.runtime.model;

import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.kernel.Parallel;
import io.moeserve.runtime.kernel.RangeTask;
import io.moeserve.runtime.kernel.Simd;
import io.moeserve.runtime.kernel.VectorOps;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Scaled dot-product attention of a step's queries over the KV cache, causal and optionally windowed, with
 * optional attention sinks (gpt-oss: a learned logit per head that joins the softmax's maximum and denominator as
 * one more score, but weighs no value, so a head may attend to less than everything).
 *
 * <p>Work is split over (token, head) pairs across all cores. Each pair reads its sequence's cached keys from
 * position {@code start} to its own position (keys of tokens later in the same step are already written but never
 * read, which is what makes one-pass prefill causal), then forms the softmax-weighted sum of values. Nothing is
 * allocated per call: scores and reduction lanes live in per-thread scratch as long as the longest context.
 *
 * <p>Design: at long contexts this loop, not the weights, is a decode step's cost (at 2,048 positions it took six
 * times the benchmark model's products), so each pass is a vector loop without per-position scalar work:
 * <ul>
 *   <li>positions are walked block by block of the cache, whose positions are contiguous, so a position's keys and
 *       values are one add away instead of a block-table lookup with two divisions;</li>
 *   <li>a score's dot product is left as one vector of partial sums and {@link Simd#sumEach} reduces LANES of them
 *       at once (one vector of LANES scores per LANES positions, the same additions as {@link Simd#sum});</li>
 *   <li>scaling, the maximum, the exponentials ({@link VectorOps#exp}, where {@code Math.exp} costs tens of
 *       nanoseconds a position) and their sum are vector passes over the score row;</li>
 *   <li>the weighted sum of values keeps one vector of the output in a register over all positions, chunk by chunk of
 *       the head, instead of loading and storing the output at every position; it is divided by the softmax's
 *       denominator once at the end.</li>
 * </ul>
 * The order of every addition depends only on the head's own positions, so a token's output does not depend on its
 * batch. Head widths that are not a whole number of vectors end in a masked, zero-padded vector.
 *
 * <p>A BF16 cache ({@link KvCacheDtype}) has its own copy of each pass, the same loops but loading keys and values
 * through {@link Simd#bf16} (a sign-extending lane conversion and a shift: the exact float32 of the stored half), so
 * the F32 passes stay as they were and neither pays a branch per position. Scores and sums are float32 either way.
 */
final class AttentionCore implements RangeTask {
    private static final VectorSpecies<Float> S = Simd.FLOATS;
    private static final VectorSpecies<Short> H = Simd.HALVES;
    private static final int LANES = Simd.LANES;

    private final Parallel parallel;
    private final int maxContext;
    private final ThreadLocal<Scratch> scratch;

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
    private int together;

    /** Query heads that share a key/value head and are computed together, where the group divides by it. */
    private static final int TOGETHER = 4;

    /**
     * One thread's score rows (one per head computed together, each padded to whole vectors, {@code stride} apart) and
     * the partial-sum vectors awaiting reduction.
     */
    private static final class Scratch {
        final float[] scores;
        final int stride;
        final float[] lanes = new float[TOGETHER * LANES * LANES];
        final float[] inverse = new float[TOGETHER];

        Scratch(int maxContext) {
            stride = maxContext + LANES;
            scores = new float[TOGETHER * stride];
        }
    }

    AttentionCore(Parallel parallel, int maxContext) {
        this.parallel = parallel;
        this.maxContext = maxContext;
        this.scratch = ThreadLocal.withInitial(() -> new Scratch(maxContext));
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
        // Heads of a group computed together read each key and value once for all of them; but not at the cost of
        // leaving threads without work (a batch-1 decode of few key/value heads on many cores).
        this.together = groupSize % TOGETHER == 0 && batch.size * numHeads / TOGETHER >= parallel.threads() ? TOGETHER : 1;
        parallel.forRange(batch.size * numHeads / together, this);
        this.batch = null;
        this.cache = null;
    }

    @Override
    public void run(int from, int to) {
        Scratch sc = scratch.get();
        float[] s = sc.scores;
        float[] keys = cache.keys(layer);
        float[] values = cache.values(layer);
        short[] keyHalves = cache.keyHalves(layer);
        short[] valueHalves = cache.valueHalves(layer);
        boolean halves = keys == null;
        int blockSize = cache.blockSize();
        int stride = sc.stride;
        int perToken = numHeads / together;
        for (int item = from; item < to; item++) {
            int t = item / perToken;
            int h0 = item % perToken * together;
            int pos = batch.positions[t];
            int slot = batch.slots[t];
            int kvHead = h0 / groupSize;
            int start = window > 0 ? Math.max(0, pos - window + 1) : 0;
            int count = pos - start + 1;
            int qOff = (t * numHeads + h0) * qkDim;
            if (halves) {
                if (together == TOGETHER) scoresTogetherBf16(sc, keyHalves, slot, start, count, blockSize, qOff, kvHead * qkDim);
                else scoresBf16(sc, keyHalves, slot, start, count, blockSize, qOff, kvHead * qkDim);
            } else if (together == TOGETHER) {
                scoresTogether(sc, keys, slot, start, count, blockSize, qOff, kvHead * qkDim);
            } else {
                scores(sc, keys, slot, start, count, blockSize, qOff, kvHead * qkDim);
            }
            for (int g = 0; g < together; g++) {
                int row = g * stride;
                float max = scaleAndMax(s, row, count);
                float sum = 0;
                if (sinks != null) {
                    float sink = sinks[h0 + g];
                    if (sink > max) max = sink;
                    sum = (float) Math.exp(sink - max);
                }
                sum += exponentials(s, row, count, max);
                sc.inverse[g] = 1f / sum;
            }
            int oOff = (t * numHeads + h0) * vDim;
            if (halves) {
                if (together == TOGETHER) weightedValuesTogetherBf16(sc, valueHalves, slot, start, count, blockSize, kvHead * vDim, oOff);
                else weightedValuesBf16(s, valueHalves, slot, start, count, blockSize, kvHead * vDim, oOff, sc.inverse[0]);
            } else if (together == TOGETHER) {
                weightedValuesTogether(sc, values, slot, start, count, blockSize, kvHead * vDim, oOff);
            } else {
                weightedValues(s, values, slot, start, count, blockSize, kvHead * vDim, oOff, sc.inverse[0]);
            }
        }
    }

    /** {@code s[j] = q · k(start + j)} for the head's query at qOff and its keys at kOff within each position. */
    private void scores(Scratch sc, float[] keys, int slot, int start, int count, int blockSize, int qOff, int kOff) {
        float[] s = sc.scores;
        float[] lanes = sc.lanes;
        int upper = qkDim - qkDim % LANES;
        VectorMask<Float> tail = S.indexInRange(upper, qkDim);
        int pending = 0;
        for (int j = 0; j < count; ) {
            int pos = start + j;
            int run = Math.min(count - j, blockSize - pos % blockSize);
            int k = cache.keyOffset(slot, pos) + kOff;
            for (int end = j + run; j < end; j++, k += keyWidth) {
                FloatVector acc = FloatVector.zero(S);
                for (int i = 0; i < upper; i += LANES) {
                    acc = FloatVector.fromArray(S, q, qOff + i).fma(FloatVector.fromArray(S, keys, k + i), acc);
                }
                if (upper < qkDim) {
                    acc = FloatVector.fromArray(S, q, qOff + upper, tail).fma(FloatVector.fromArray(S, keys, k + upper, tail), acc);
                }
                acc.intoArray(lanes, pending * LANES);
                if (++pending == LANES) {
                    Simd.sumEach(lanes, 0, LANES, s, j + 1 - LANES);
                    pending = 0;
                }
            }
        }
        if (pending > 0) Simd.sumEach(lanes, 0, pending, s, count - pending);
    }

    /**
     * {@link #scores} for the TOGETHER heads from the query at qOff, which share the keys at kOff: each position's key
     * is loaded once for all of them, each head's partial sums reduced into its own row, in the same order as alone.
     */
    private void scoresTogether(Scratch sc, float[] keys, int slot, int start, int count, int blockSize, int qOff, int kOff) {
        float[] s = sc.scores;
        float[] lanes = sc.lanes;
        int stride = sc.stride;
        int upper = qkDim - qkDim % LANES;
        VectorMask<Float> tail = S.indexInRange(upper, qkDim);
        int q1 = qOff + qkDim, q2 = qOff + 2 * qkDim, q3 = qOff + 3 * qkDim;
        int group = LANES * LANES;
        int pending = 0;
        for (int j = 0; j < count; ) {
            int pos = start + j;
            int run = Math.min(count - j, blockSize - pos % blockSize);
            int k = cache.keyOffset(slot, pos) + kOff;
            for (int end = j + run; j < end; j++, k += keyWidth) {
                FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0;
                for (int i = 0; i < upper; i += LANES) {
                    FloatVector key = FloatVector.fromArray(S, keys, k + i);
                    a0 = FloatVector.fromArray(S, q, qOff + i).fma(key, a0);
                    a1 = FloatVector.fromArray(S, q, q1 + i).fma(key, a1);
                    a2 = FloatVector.fromArray(S, q, q2 + i).fma(key, a2);
                    a3 = FloatVector.fromArray(S, q, q3 + i).fma(key, a3);
                }
                if (upper < qkDim) {
                    FloatVector key = FloatVector.fromArray(S, keys, k + upper, tail);
                    a0 = FloatVector.fromArray(S, q, qOff + upper, tail).fma(key, a0);
                    a1 = FloatVector.fromArray(S, q, q1 + upper, tail).fma(key, a1);
                    a2 = FloatVector.fromArray(S, q, q2 + upper, tail).fma(key, a2);
                    a3 = FloatVector.fromArray(S, q, q3 + upper, tail).fma(key, a3);
                }
                a0.intoArray(lanes, pending * LANES);
                a1.intoArray(lanes, group + pending * LANES);
                a2.intoArray(lanes, 2 * group + pending * LANES);
                a3.intoArray(lanes, 3 * group + pending * LANES);
                if (++pending == LANES) {
                    for (int g = 0; g < TOGETHER; g++) Simd.sumEach(lanes, g * group, LANES, s, g * stride + j + 1 - LANES);
                    pending = 0;
                }
            }
        }
        if (pending > 0) {
            for (int g = 0; g < TOGETHER; g++) Simd.sumEach(lanes, g * group, pending, s, g * stride + count - pending);
        }
    }

    /**
     * {@link #weightedValues} for the TOGETHER heads whose probabilities are the scratch's rows and which share the
     * values at vHeadOff: each position's chunk of values is loaded once and feeds four accumulators.
     */
    private void weightedValuesTogether(Scratch sc, float[] values, int slot, int start, int count, int blockSize, int vHeadOff,
                                        int oOff) {
        float[] s = sc.scores;
        int r1 = sc.stride, r2 = 2 * sc.stride, r3 = 3 * sc.stride;
        for (int c = 0; c < vDim; c += LANES) {
            VectorMask<Float> m = S.indexInRange(c, vDim);
            FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0;
            for (int j = 0; j < count; ) {
                int pos = start + j;
                int run = Math.min(count - j, blockSize - pos % blockSize);
                int v = cache.valueOffset(slot, pos) + vHeadOff + c;
                for (int end = j + run; j < end; j++, v += valueWidth) {
                    FloatVector x = FloatVector.fromArray(S, values, v, m);
                    a0 = x.fma(FloatVector.broadcast(S, s[j]), a0);
                    a1 = x.fma(FloatVector.broadcast(S, s[r1 + j]), a1);
                    a2 = x.fma(FloatVector.broadcast(S, s[r2 + j]), a2);
                    a3 = x.fma(FloatVector.broadcast(S, s[r3 + j]), a3);
                }
            }
            a0.mul(sc.inverse[0]).intoArray(out, oOff + c, m);
            a1.mul(sc.inverse[1]).intoArray(out, oOff + vDim + c, m);
            a2.mul(sc.inverse[2]).intoArray(out, oOff + 2 * vDim + c, m);
            a3.mul(sc.inverse[3]).intoArray(out, oOff + 3 * vDim + c, m);
        }
    }

    /** Scales the scores {@code s[row ..row + count)} in place and returns their maximum. */
    private float scaleAndMax(float[] s, int row, int count) {
        int upper = count - count % LANES;
        FloatVector max = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
        for (int j = 0; j < upper; j += LANES) {
            FloatVector v = FloatVector.fromArray(S, s, row + j).mul(scale);
            v.intoArray(s, row + j);
            max = max.max(v);
        }
        float m = max.reduceLanes(VectorOperators.MAX);
        for (int j = row + upper; j < row + count; j++) {
            s[j] *= scale;
            m = Math.max(m, s[j]);
        }
        return m;
    }

    /** {@code s[row + j] = exp(s[row + j] − max)} in place; returns their sum (lanes, then the tail, in a fixed order). */
    private static float exponentials(float[] s, int row, int count, float max) {
        int upper = count - count % LANES;
        FloatVector m = FloatVector.broadcast(S, max);
        FloatVector sum = FloatVector.zero(S);
        for (int j = 0; j < upper; j += LANES) {
            FloatVector e = VectorOps.exp(FloatVector.fromArray(S, s, row + j).sub(m));
            e.intoArray(s, row + j);
            sum = sum.add(e);
        }
        if (upper < count) {
            VectorMask<Float> tail = S.indexInRange(upper, count);
            FloatVector e = VectorOps.exp(FloatVector.fromArray(S, s, row + upper, tail).sub(m));
            e.intoArray(s, row + upper, tail);
            sum = sum.add(e, tail);
        }
        return Simd.sum(sum);
    }

    /** {@code out[oOff ..] = inv · Σ_j s[j] · v(start + j)}: one register of the output per chunk of the head. */
    private void weightedValues(float[] s, float[] values, int slot, int start, int count, int blockSize, int vHeadOff,
                                int oOff, float inv) {
        for (int c = 0; c < vDim; c += LANES) {
            VectorMask<Float> m = S.indexInRange(c, vDim);
            boolean whole = c + LANES <= vDim;
            FloatVector acc = FloatVector.zero(S);
            for (int j = 0; j < count; ) {
                int pos = start + j;
                int run = Math.min(count - j, blockSize - pos % blockSize);
                int v = cache.valueOffset(slot, pos) + vHeadOff + c;
                if (whole) {
                    for (int end = j + run; j < end; j++, v += valueWidth) {
                        acc = FloatVector.fromArray(S, values, v).fma(FloatVector.broadcast(S, s[j]), acc);
                    }
                } else {
                    for (int end = j + run; j < end; j++, v += valueWidth) {
                        acc = FloatVector.fromArray(S, values, v, m).fma(FloatVector.broadcast(S, s[j]), acc);
                    }
                }
            }
            acc = acc.mul(inv);
            if (whole) acc.intoArray(out, oOff + c);
            else acc.intoArray(out, oOff + c, m);
        }
    }

    /** {@link #scores} over BF16 keys, widened as they are loaded. */
    private void scoresBf16(Scratch sc, short[] keys, int slot, int start, int count, int blockSize, int qOff, int kOff) {
        float[] s = sc.scores;
        float[] lanes = sc.lanes;
        int upper = qkDim - qkDim % LANES;
        VectorMask<Float> tail = S.indexInRange(upper, qkDim);
        VectorMask<Short> halfTail = H.indexInRange(upper, qkDim);
        int pending = 0;
        for (int j = 0; j < count; ) {
            int pos = start + j;
            int run = Math.min(count - j, blockSize - pos % blockSize);
            int k = cache.keyOffset(slot, pos) + kOff;
            for (int end = j + run; j < end; j++, k += keyWidth) {
                FloatVector acc = FloatVector.zero(S);
                for (int i = 0; i < upper; i += LANES) {
                    acc = FloatVector.fromArray(S, q, qOff + i).fma(Simd.bf16(keys, k + i), acc);
                }
                if (upper < qkDim) {
                    acc = FloatVector.fromArray(S, q, qOff + upper, tail).fma(Simd.bf16(keys, k + upper, halfTail), acc);
                }
                acc.intoArray(lanes, pending * LANES);
                if (++pending == LANES) {
                    Simd.sumEach(lanes, 0, LANES, s, j + 1 - LANES);
                    pending = 0;
                }
            }
        }
        if (pending > 0) Simd.sumEach(lanes, 0, pending, s, count - pending);
    }

    /** {@link #scoresTogether} over BF16 keys, widened as they are loaded. */
    private void scoresTogetherBf16(Scratch sc, short[] keys, int slot, int start, int count, int blockSize, int qOff, int kOff) {
        float[] s = sc.scores;
        float[] lanes = sc.lanes;
        int stride = sc.stride;
        int upper = qkDim - qkDim % LANES;
        VectorMask<Float> tail = S.indexInRange(upper, qkDim);
        VectorMask<Short> halfTail = H.indexInRange(upper, qkDim);
        int q1 = qOff + qkDim, q2 = qOff + 2 * qkDim, q3 = qOff + 3 * qkDim;
        int group = LANES * LANES;
        int pending = 0;
        for (int j = 0; j < count; ) {
            int pos = start + j;
            int run = Math.min(count - j, blockSize - pos % blockSize);
            int k = cache.keyOffset(slot, pos) + kOff;
            for (int end = j + run; j < end; j++, k += keyWidth) {
                FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0;
                for (int i = 0; i < upper; i += LANES) {
                    FloatVector key = Simd.bf16(keys, k + i);
                    a0 = FloatVector.fromArray(S, q, qOff + i).fma(key, a0);
                    a1 = FloatVector.fromArray(S, q, q1 + i).fma(key, a1);
                    a2 = FloatVector.fromArray(S, q, q2 + i).fma(key, a2);
                    a3 = FloatVector.fromArray(S, q, q3 + i).fma(key, a3);
                }
                if (upper < qkDim) {
                    FloatVector key = Simd.bf16(keys, k + upper, halfTail);
                    a0 = FloatVector.fromArray(S, q, qOff + upper, tail).fma(key, a0);
                    a1 = FloatVector.fromArray(S, q, q1 + upper, tail).fma(key, a1);
                    a2 = FloatVector.fromArray(S, q, q2 + upper, tail).fma(key, a2);
                    a3 = FloatVector.fromArray(S, q, q3 + upper, tail).fma(key, a3);
                }
                a0.intoArray(lanes, pending * LANES);
                a1.intoArray(lanes, group + pending * LANES);
                a2.intoArray(lanes, 2 * group + pending * LANES);
                a3.intoArray(lanes, 3 * group + pending * LANES);
                if (++pending == LANES) {
                    for (int g = 0; g < TOGETHER; g++) Simd.sumEach(lanes, g * group, LANES, s, g * stride + j + 1 - LANES);
                    pending = 0;
                }
            }
        }
        if (pending > 0) {
            for (int g = 0; g < TOGETHER; g++) Simd.sumEach(lanes, g * group, pending, s, g * stride + count - pending);
        }
    }

    /** {@link #weightedValuesTogether} over BF16 values, widened as they are loaded. */
    private void weightedValuesTogetherBf16(Scratch sc, short[] values, int slot, int start, int count, int blockSize,
                                            int vHeadOff, int oOff) {
        float[] s = sc.scores;
        int r1 = sc.stride, r2 = 2 * sc.stride, r3 = 3 * sc.stride;
        for (int c = 0; c < vDim; c += LANES) {
            VectorMask<Float> m = S.indexInRange(c, vDim);
            VectorMask<Short> hm = H.indexInRange(c, vDim);
            FloatVector a0 = FloatVector.zero(S), a1 = a0, a2 = a0, a3 = a0;
            for (int j = 0; j < count; ) {
                int pos = start + j;
                int run = Math.min(count - j, blockSize - pos % blockSize);
                int v = cache.valueOffset(slot, pos) + vHeadOff + c;
                for (int end = j + run; j < end; j++, v += valueWidth) {
                    FloatVector x = Simd.bf16(values, v, hm);
                    a0 = x.fma(FloatVector.broadcast(S, s[j]), a0);
                    a1 = x.fma(FloatVector.broadcast(S, s[r1 + j]), a1);
                    a2 = x.fma(FloatVector.broadcast(S, s[r2 + j]), a2);
                    a3 = x.fma(FloatVector.broadcast(S, s[r3 + j]), a3);
                }
            }
            a0.mul(sc.inverse[0]).intoArray(out, oOff + c, m);
            a1.mul(sc.inverse[1]).intoArray(out, oOff + vDim + c, m);
            a2.mul(sc.inverse[2]).intoArray(out, oOff + 2 * vDim + c, m);
            a3.mul(sc.inverse[3]).intoArray(out, oOff + 3 * vDim + c, m);
        }
    }

    /** {@link #weightedValues} over BF16 values, widened as they are loaded. */
    private void weightedValuesBf16(float[] s, short[] values, int slot, int start, int count, int blockSize, int vHeadOff,
                                    int oOff, float inv) {
        for (int c = 0; c < vDim; c += LANES) {
            VectorMask<Float> m = S.indexInRange(c, vDim);
            VectorMask<Short> hm = H.indexInRange(c, vDim);
            boolean whole = c + LANES <= vDim;
            FloatVector acc = FloatVector.zero(S);
            for (int j = 0; j < count; ) {
                int pos = start + j;
                int run = Math.min(count - j, blockSize - pos % blockSize);
                int v = cache.valueOffset(slot, pos) + vHeadOff + c;
                if (whole) {
                    for (int end = j + run; j < end; j++, v += valueWidth) {
                        acc = Simd.bf16(values, v).fma(FloatVector.broadcast(S, s[j]), acc);
                    }
                } else {
                    for (int end = j + run; j < end; j++, v += valueWidth) {
                        acc = Simd.bf16(values, v, hm).fma(FloatVector.broadcast(S, s[j]), acc);
                    }
                }
            }
            acc = acc.mul(inv);
            if (whole) acc.intoArray(out, oOff + c);
            else acc.intoArray(out, oOff + c, m);
        }
    }

    int maxContext() {
        return maxContext;
    }
}
