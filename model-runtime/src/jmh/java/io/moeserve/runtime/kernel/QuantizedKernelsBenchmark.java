package io.moeserve.runtime.kernel;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Quantization;
import io.moeserve.runtime.tensor.Quantization.Scheme;
import io.moeserve.runtime.tensor.TensorAccess;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;

/**
 * Issue 17's quantized kernels before against after, interleaved in one JVM on one thread: the int4 one-token loop
 * by table lookup against the conversion loop it replaced ({@link QuantizedKernel#matvecByConversion}),
 * and 2–8 tokens through {@link QuantizedSmallBatchKernel} against the packed {@link GemmKernel} they took before.
 * Each case alternates short slices of the two, so both see the same machine load (JMH runs one after the other,
 * which on a shared, loaded machine measures the load as much as the kernel); it prints the median rate of each and
 * the median of the slice-by-slice ratios. Weights as {@link WeightFormatBenchmark}'s: 2880 × 2880, groups of 32,
 * BF16 scales, cycling over 24 experts so that they come from DRAM. Run with the vector width of interest, e.g.
 * <pre>
 * java --add-modules=jdk.incubator.vector -cp ... io.moeserve.runtime.kernel.QuantizedKernelsBenchmark 20 INT4:1,INT8:4
 * java ... -Dmoe.vector.bits=256 io.moeserve.runtime.kernel.QuantizedKernelsBenchmark 20 INT4:1
 * </pre>
 */
public final class QuantizedKernelsBenchmark {
    private static final int ROWS = WeightFormatBenchmark.ROWS;
    private static final int COLS = WeightFormatBenchmark.COLS;
    private static final int EXPERTS = WeightFormatBenchmark.EXPERTS;
    private static final long SLICE_NANOS = 250_000_000L;

    private QuantizedKernelsBenchmark() {}

    /** A product of one of the experts, old or new way. */
    private interface Product {
        void run(WeightMatrix w);
    }

    public static void main(String[] args) {
        double seconds = args.length > 0 ? Double.parseDouble(args[0]) : 20;
        String[] cases = (args.length > 1 ? args[1] : "INT4:1,INT8:4,INT4:4").split(",");
        System.out.println("vector bits " + Simd.FLOATS.vectorBitSize() + ", " + seconds + " s per case (a quarter of it warm-up)");
        for (String c : cases) {
            String[] parts = c.split(":");
            Scheme scheme = switch (parts[0]) {
                case "INT8" -> Scheme.PACKED_INT8;
                case "INT4" -> Scheme.PACKED_INT4;
                default -> throw new IllegalArgumentException("format " + parts[0]);
            };
            run(scheme, parts[0], Integer.parseInt(parts[1]), seconds);
        }
    }

    private static void run(Scheme scheme, String name, int tokens, double seconds) {
        Random random = new Random(1);
        try (Arena arena = Arena.ofShared()) {
            WeightMatrix[] experts = new WeightMatrix[EXPERTS];
            for (int e = 0; e < EXPERTS; e++) experts[e] = packed(arena, random, scheme);
            float[] x = new float[tokens * COLS];
            for (int i = 0; i < x.length; i++) x[i] = (float) random.nextGaussian();
            float[] y = new float[tokens * ROWS];
            Product before;
            Product after;
            if (tokens == 1) {
                before = w -> QuantizedKernel.matvecByConversion(w, x, 0, y, 0, 0, ROWS);
                after = w -> QuantizedKernel.matvec(w, x, 0, y, 0, 0, ROWS);
            } else {
                GemmKernel.Scratch gemm = new GemmKernel.Scratch();
                float[] small = new float[QuantizedSmallBatchKernel.scratchLength(experts[0])];
                before = w -> GemmKernel.multiply(w, x, 0, y, 0, 0, ROWS, 0, tokens, gemm);
                after = w -> QuantizedSmallBatchKernel.multiply(w, x, 0, y, 0, 0, ROWS, 0, tokens, small);
            }
            long end = System.nanoTime() + (long) (seconds * 0.25e9);
            while (System.nanoTime() < end) {
                slice(before, experts);
                slice(after, experts);
            }
            int pairs = Math.max(2, (int) (seconds * 0.75e9 / (2 * SLICE_NANOS)));
            double[] b = new double[pairs], a = new double[pairs], ratio = new double[pairs];
            for (int i = 0; i < pairs; i++) {
                // Alternate which goes first, so neither always follows the other.
                if (i % 2 == 0) {
                    b[i] = slice(before, experts);
                    a[i] = slice(after, experts);
                } else {
                    a[i] = slice(after, experts);
                    b[i] = slice(before, experts);
                }
                ratio[i] = a[i] / b[i];
            }
            double bytes = experts[0].byteSize();
            System.out.printf("%s tokens=%d: before %.1f products/s (%.2f GB/s), after %.1f (%.2f GB/s), after/before %.2f"
                            + " (slice ratios %.2f..%.2f, %d pairs)%n", name, tokens, median(b), median(b) * bytes / 1e9, median(a),
                    median(a) * bytes / 1e9, median(ratio), min(ratio), max(ratio), pairs);
        }
    }

    /** Products per second over one slice, cycling over the experts. */
    private static double slice(Product p, WeightMatrix[] experts) {
        long start = System.nanoTime();
        long end = start + SLICE_NANOS;
        int n = 0;
        long now;
        do {
            p.run(experts[n % EXPERTS]);
            n++;
            now = System.nanoTime();
        } while (now < end);
        return n * 1e9 / (now - start);
    }

    private static WeightMatrix packed(Arena arena, Random random, Scheme scheme) {
        WeightMatrix codes = QuantizedKernelDifferentialTest.randomQuantized(arena, scheme, ROWS, COLS, 1, 32, false, random);
        long count = (long) ROWS * (COLS / 32);
        MemorySegment scales = arena.allocate(2 * count);
        for (long i = 0; i < count; i++) TensorAccess.setFloat(scales, DType.BF16, i, 0.01f + 0.09f * random.nextFloat());
        return new WeightMatrix(scheme.name(), codes.data(), codes.dtype(), ROWS, COLS,
                new Quantization(scheme, scales, DType.BF16, 1, 32, null));
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    private static double min(double[] v) {
        return Arrays.stream(v).min().orElse(0);
    }

    private static double max(double[] v) {
        return Arrays.stream(v).max().orElse(0);
    }
}
