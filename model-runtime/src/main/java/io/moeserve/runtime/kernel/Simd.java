package io.moeserve.runtime.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * The vector width the kernels run at, fixed when this class initialises.
 *
 * <p>Why static final: C2 only turns Vector API calls into machine instructions when the species is a compile-time
 * constant; a species held in an instance field makes every vector a heap object and the kernels a thousand times
 * slower. So the width is chosen once per class loader: the machine's preferred width, or system property
 * {@value #PROPERTY} (128, 256 or 512, at most the preferred width), e.g. to try 256-bit vectors where 512-bit ones
 * lower the clock. The kernel and numerics tests run again at 256 and 128 bits (model-runtime/pom.xml).
 */
public final class Simd {

    /** System property that narrows the vector width, in bits. */
    static final String PROPERTY = "moe.vector.bits";

    /** Float lanes; every kernel loop steps by this species. */
    public static final VectorSpecies<Float> FLOATS = chooseFloats();

    /** Int lanes of the same shape as {@link #FLOATS}, for bit manipulation of widened halves. */
    static final VectorSpecies<Integer> INTS = VectorSpecies.of(int.class, FLOATS.vectorShape());

    /** Short lanes, as many as {@link #FLOATS} has: one load of 16-bit weights fills one float vector. */
    public static final VectorSpecies<Short> HALVES =
            VectorSpecies.of(short.class, VectorShape.forBitSize(FLOATS.vectorBitSize() / 2));

    /** Floats per vector. */
    public static final int LANES = FLOATS.length();

    // Lane i ↔ lane i ^ d, the butterflies of sum(); null where the species has too few lanes.
    private static final VectorShuffle<Float> XOR8 = LANES >= 16 ? VectorShuffle.fromOp(FLOATS, i -> i ^ 8) : null;
    private static final VectorShuffle<Float> XOR4 = LANES >= 8 ? VectorShuffle.fromOp(FLOATS, i -> i ^ 4) : null;
    private static final VectorShuffle<Float> XOR2 = LANES >= 4 ? VectorShuffle.fromOp(FLOATS, i -> i ^ 2) : null;
    private static final VectorShuffle<Float> XOR1 = VectorShuffle.fromOp(FLOATS, i -> i ^ 1);

    // sumEach's merges, level by level (segment size LANES, LANES/2, ..., 2): which lane of a vector holding
    // LANES/s accumulators in segments of s lanes goes to lane p of the lower-halves (LO) or upper-halves (HI)
    // vector; UPPER takes the second vector's lanes.
    private static final int LEVELS = Integer.numberOfTrailingZeros(LANES);
    private static final VectorShuffle<Float>[] LO = merges(0);
    private static final VectorShuffle<Float>[] HI = merges(1);
    private static final VectorMask<Float> UPPER = VectorMask.fromLong(FLOATS, ((1L << LANES) - 1) & ~((1L << (LANES / 2)) - 1));

    private Simd() {}

    /**
     * LANES bfloat16 values from {@code a[offset ..]} widened to float32 exactly, as {@link WeightVectors#bf16} widens
     * mapped weights: sign-extend to ints, shift left 16, reinterpret (the KV cache's BF16 keys and values).
     */
    public static FloatVector bf16(short[] a, int offset) {
        return widen(ShortVector.fromArray(HALVES, a, offset));
    }

    /** {@link #bf16(short[], int)} of the lanes of {@code m} (a mask of {@link #HALVES}), zeros in the others. */
    public static FloatVector bf16(short[] a, int offset, VectorMask<Short> m) {
        return widen(ShortVector.fromArray(HALVES, a, offset, m));
    }

    private static FloatVector widen(ShortVector bf16) {
        return ((IntVector) bf16.convertShape(VectorOperators.S2I, INTS, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    /**
     * The sum of the lanes, always added in the same order.
     *
     * <p>Why not {@code reduceLanes(ADD)}: its order is unspecified, and C2 really does change it; the same
     * product computed interpreted, by C1 and by C2 (which compiles a kernel seconds into a run) came out different
     * in the last bits, so a model's logits drifted during warm-up and seeded sampling was not reproducible. This
     * fixed butterfly of exact lanewise adds and permutes gives the same bits in every tier, at about the cost of
     * the intrinsic (log2(lanes) permute-add pairs).
     */
    public static float sum(FloatVector v) {
        if (XOR8 != null) v = v.add(v.rearrange(XOR8));
        if (XOR4 != null) v = v.add(v.rearrange(XOR4));
        if (XOR2 != null) v = v.add(v.rearrange(XOR2));
        return v.add(v.rearrange(XOR1)).lane(0);
    }

    /**
     * {@code sums[sumsOffset + k] = sum(vector k)} for the {@code count} vectors stored one after another in
     * {@code lanes} (each {@link #LANES} floats): the same additions in the same tree as {@link #sum}, so the same bits.
     *
     * <p>Why: a kernel that reduces many accumulators per tile (the GEMM's 16) would call {@link #sum} at call sites
     * C2 does not consider hot, so it does not inline it there, and every call then boxes its vector argument on the
     * heap (measured: 16 objects per tile, a third of the GEMM's time). Such kernels store their accumulators with
     * {@code intoArray}, which never boxes, and reduce them here in scalar: log2(LANES) halvings, lane i with lane
     * i + half, which is the butterfly's lane i with lane i ^ half.
     */
    public static void sumEach(float[] lanes, int count, float[] sums, int sumsOffset) {
        sumEach(lanes, 0, count, sums, sumsOffset);
    }

    /** {@link #sumEach(float[], int, float[], int)} of the vectors stored from {@code lanes[lanesOffset]}. */
    public static void sumEach(float[] lanes, int lanesOffset, int count, float[] sums, int sumsOffset) {
        int k = 0;
        for (; k + LANES <= count; k += LANES) sumGroup(lanes, lanesOffset + k * LANES, sums, sumsOffset + k);
        for (; k < count; k++) {
            int base = lanesOffset + k * LANES;
            for (int half = LANES / 2; half >= 1; half /= 2) {
                for (int i = 0; i < half; i++) lanes[base + i] = lanes[base + i] + lanes[base + i + half];
            }
            sums[sumsOffset + k] = lanes[base];
        }
    }

    /**
     * {@link #sumEach} of LANES accumulators at once, in vector registers: each level merges two vectors into one,
     * adding lane i of every accumulator's segment to lane i + half (the scalar tree's very additions, in lanes), so
     * LANES accumulators become one vector of their LANES sums after log2(LANES) levels: LANES − 1 merges of four
     * permutes, two blends and one add, where the scalar tree spends about LANES² loads, adds and stores. Works in
     * place in {@code lanes}.
     */
    private static void sumGroup(float[] lanes, int base, float[] sums, int at) {
        int vectors = LANES;
        for (int level = 0; level < LEVELS; level++, vectors /= 2) {
            VectorShuffle<Float> lo = LO[level];
            VectorShuffle<Float> hi = HI[level];
            for (int j = 0; j < vectors / 2; j++) {
                FloatVector y = FloatVector.fromArray(FLOATS, lanes, base + 2 * j * LANES);
                FloatVector z = FloatVector.fromArray(FLOATS, lanes, base + (2 * j + 1) * LANES);
                FloatVector low = y.rearrange(lo).blend(z.rearrange(lo), UPPER);
                FloatVector high = y.rearrange(hi).blend(z.rearrange(hi), UPPER);
                low.add(high).intoArray(lanes, base + j * LANES);
            }
        }
        FloatVector.fromArray(FLOATS, lanes, base).intoArray(sums, at);
    }

    @SuppressWarnings("unchecked")
    private static VectorShuffle<Float>[] merges(int upper) {
        VectorShuffle<Float>[] shuffles = new VectorShuffle[LEVELS];
        int segment = LANES;
        for (int level = 0; level < LEVELS; level++, segment /= 2) {
            int half = segment / 2;
            int perVector = LANES / segment;
            int[] from = new int[LANES];
            for (int p = 0; p < LANES; p++) {
                int seg = p / half;
                // Segments [0, perVector) come from the first vector, the rest (same lanes) from the second.
                from[p] = (seg % perVector) * segment + upper * half + p % half;
            }
            shuffles[level] = VectorShuffle.fromArray(FLOATS, from, 0);
        }
        return shuffles;
    }

    private static VectorSpecies<Float> chooseFloats() {
        VectorSpecies<Float> preferred = FloatVector.SPECIES_PREFERRED;
        String value = System.getProperty(PROPERTY);
        if (value == null || value.isBlank()) return preferred;
        int bits;
        try {
            bits = Integer.parseInt(value.trim());
        } catch (NumberFormatException e) {
            bits = -1;
        }
        if ((bits != 128 && bits != 256 && bits != 512) || bits > preferred.vectorBitSize()) {
            throw new IllegalArgumentException("system property " + PROPERTY + " must be 128, 256 or 512 and at most "
                    + preferred.vectorBitSize() + " on this machine, got '" + value + "'");
        }
        return VectorSpecies.of(float.class, VectorShape.forBitSize(bits));
    }
}
