package io.moeserve.runtime.kernel;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The vector width the kernels run at, fixed when this class initialises.
 *
 * <p>Why static final: C2 only turns Vector API calls into machine instructions when the species is a compile-time
 * constant; a species held in an instance field makes every vector a heap object and the kernels a thousand times
 * slower. So the width is chosen once per class loader: the machine's preferred width, or system property
 * {@value #PROPERTY} (128, 256 or 512, at most the preferred width), e.g. to try 256-bit vectors where 512-bit ones
 * lower the clock. Tests load the kernel classes in a fresh class loader to exercise the narrower widths.
 */
final class Simd {

    /** System property that narrows the vector width, in bits. */
    static final String PROPERTY = "moe.vector.bits";

    /** Float lanes; every kernel loop steps by this species. */
    static final VectorSpecies<Float> FLOATS = chooseFloats();

    /** Int lanes of the same shape as {@link #FLOATS}, for bit manipulation of widened halves. */
    static final VectorSpecies<Integer> INTS = VectorSpecies.of(int.class, FLOATS.vectorShape());

    /** Short lanes, as many as {@link #FLOATS} has: one load of 16-bit weights fills one float vector. */
    static final VectorSpecies<Short> HALVES =
            VectorSpecies.of(short.class, VectorShape.forBitSize(FLOATS.vectorBitSize() / 2));

    /** Floats per vector. */
    static final int LANES = FLOATS.length();

    private Simd() {}

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
