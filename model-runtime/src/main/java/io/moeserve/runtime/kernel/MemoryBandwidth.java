package io.moeserve.runtime.kernel;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.Locale;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Measures the two ceilings of the matmul kernels on this machine: read bandwidth (decode's matrix-vector products
 * are bound by it) and float32 FMA peak (prefill's matrix-matrix products are bound by it).
 *
 * <p>Usage: {@code java --add-modules=jdk.incubator.vector -cp ... io.moeserve.runtime.kernel.MemoryBandwidth
 * [threads] [GiB]}, defaults: all processors, 1 GiB. Bandwidth is the best of several passes summing an off-heap
 * buffer of floats (touched first, so the pages are real memory, not the shared zero page) with the Vector API,
 * each thread over its own contiguous part. FMA peak is the best of several runs of independent FMA chains held in
 * registers (enough chains to cover the FMA latency on every pipe), at the preferred vector width.
 */
public final class MemoryBandwidth {

    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int RUNS = 5;
    private static final long FMA_ITERATIONS = 20_000_000L;

    private MemoryBandwidth() {}

    /** Prints read bandwidth (GB/s), FMA peak (GFLOP/s) and the ceilings they set. */
    public static void main(String[] args) {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : Runtime.getRuntime().availableProcessors();
        double gib = args.length > 1 ? Double.parseDouble(args[1]) : 1.0;
        long bytes = (long) (gib * (1L << 30)) / 4096 * 4096;
        System.out.printf(Locale.ROOT, "threads %d, vector %d bits (%d floats), buffer %.2f GiB%n",
                threads, SPECIES.vectorBitSize(), SPECIES.length(), bytes / (double) (1L << 30));
        try (Parallel pool = new Parallel(threads); Arena arena = Arena.ofShared()) {
            MemorySegment buffer = arena.allocate(bytes, 64);
            buffer.fill((byte) 0x3c); // every float is 0.0115: a normal number, and the pages are now mapped
            double gbPerSecond = readBandwidth(pool, buffer);
            double gflops = fmaPeak(pool);
            System.out.printf(Locale.ROOT, "read bandwidth: %.1f GB/s (best of %d passes)%n", gbPerSecond, RUNS);
            System.out.printf(Locale.ROOT, "FMA peak:       %.1f GFLOP/s (best of %d runs)%n", gflops, RUNS);
            System.out.printf(Locale.ROOT, "ceilings: matvec time >= rows*cols*bytesPerWeight / %.1f GB/s;"
                    + " GEMM time >= 2*n*rows*cols / %.1f GFLOP/s;%n", gbPerSecond, gflops);
            System.out.printf(Locale.ROOT, "          GEMM is compute-bound once 2*n/bytesPerWeight > %.1f flop/byte"
                    + " (n > %.0f for BF16, n > %.0f for F32)%n", gflops / gbPerSecond,
                    gflops / gbPerSecond, 2 * gflops / gbPerSecond);
        }
    }

    /** Read bandwidth in GB/s with the given threads over a fresh off-heap buffer of {@code bytes}. */
    public static double measureReadBandwidth(Parallel pool, long bytes) {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment buffer = arena.allocate(bytes / 4096 * 4096, 64);
            buffer.fill((byte) 0x3c);
            return readBandwidth(pool, buffer);
        }
    }

    /** Float32 FMA peak in GFLOP/s with the given threads. */
    public static double measureFmaPeak(Parallel pool) {
        return fmaPeak(pool);
    }

    /** Best of {@link #RUNS} passes over {@code buffer}, in GB/s (10^9 bytes per second). */
    static double readBandwidth(Parallel pool, MemorySegment buffer) {
        SumTask task = new SumTask(buffer, pool.threads());
        pool.forRange(pool.threads(), task); // warm-up pass: compiles the loop
        long best = Long.MAX_VALUE;
        for (int run = 0; run < RUNS; run++) {
            long start = System.nanoTime();
            pool.forRange(pool.threads(), task);
            best = Math.min(best, System.nanoTime() - start);
        }
        if (Float.isNaN(task.total())) System.out.println("(sum is NaN)"); // keeps the sums observable
        return buffer.byteSize() / (double) best;
    }

    /** Best of {@link #RUNS} runs of independent FMA chains on every thread, in GFLOP/s. */
    static double fmaPeak(Parallel pool) {
        FmaTask task = new FmaTask(pool.threads());
        task.iterations = FMA_ITERATIONS / 100;
        pool.forRange(pool.threads(), task); // warm-up run: compiles the loop
        task.iterations = FMA_ITERATIONS;
        long best = Long.MAX_VALUE;
        for (int run = 0; run < RUNS; run++) {
            long start = System.nanoTime();
            pool.forRange(pool.threads(), task);
            best = Math.min(best, System.nanoTime() - start);
        }
        if (Float.isNaN(task.total())) System.out.println("(sum is NaN)");
        double flops = 2.0 * SPECIES.length() * FmaTask.CHAINS * FMA_ITERATIONS * pool.threads();
        return flops / best;
    }

    /** Each index is one thread's contiguous share of the buffer. */
    private static final class SumTask implements RangeTask {
        private final MemorySegment buffer;
        private final float[] sums;

        SumTask(MemorySegment buffer, int parts) {
            this.buffer = buffer;
            this.sums = new float[parts];
        }

        @Override
        public void run(int from, int to) {
            for (int part = from; part < to; part++) {
                long step = SPECIES.vectorByteSize();
                long chunk = buffer.byteSize() / sums.length / (4 * step) * (4 * step);
                sums[part] = sum(buffer, part * chunk, part * chunk + chunk, step);
            }
        }

        private static float sum(MemorySegment m, long from, long to, long step) {
            // Four accumulators keep four loads in flight; the FP add latency would otherwise limit one core.
            FloatVector a0 = FloatVector.zero(SPECIES), a1 = a0, a2 = a0, a3 = a0;
            for (long o = from; o < to; o += 4 * step) {
                a0 = a0.add(FloatVector.fromMemorySegment(SPECIES, m, o, ByteOrder.LITTLE_ENDIAN));
                a1 = a1.add(FloatVector.fromMemorySegment(SPECIES, m, o + step, ByteOrder.LITTLE_ENDIAN));
                a2 = a2.add(FloatVector.fromMemorySegment(SPECIES, m, o + 2 * step, ByteOrder.LITTLE_ENDIAN));
                a3 = a3.add(FloatVector.fromMemorySegment(SPECIES, m, o + 3 * step, ByteOrder.LITTLE_ENDIAN));
            }
            return a0.add(a1).add(a2).add(a3).reduceLanes(VectorOperators.ADD);
        }

        float total() {
            float t = 0;
            for (float s : sums) t += s;
            return t;
        }
    }

    /** Each index is one thread running {@link #CHAINS} independent FMA chains. */
    private static final class FmaTask implements RangeTask {
        static final int CHAINS = 12;
        private final float[] sums;
        long iterations;

        FmaTask(int parts) {
            this.sums = new float[parts];
        }

        @Override
        public void run(int from, int to) {
            for (int part = from; part < to; part++) sums[part] = chains(iterations, part);
        }

        private static float chains(long iterations, int seed) {
            // acc = acc·m + c converges to c / (1 - m), so values stay finite however long it runs.
            FloatVector m = FloatVector.broadcast(SPECIES, 0.999f);
            FloatVector c = FloatVector.broadcast(SPECIES, 1e-3f * (seed + 1));
            FloatVector a0 = FloatVector.broadcast(SPECIES, 1f), a1 = a0.add(c), a2 = a1.add(c), a3 = a2.add(c);
            FloatVector a4 = a3.add(c), a5 = a4.add(c), a6 = a5.add(c), a7 = a6.add(c);
            FloatVector a8 = a7.add(c), a9 = a8.add(c), a10 = a9.add(c), a11 = a10.add(c);
            for (long i = 0; i < iterations; i++) {
                a0 = a0.fma(m, c);
                a1 = a1.fma(m, c);
                a2 = a2.fma(m, c);
                a3 = a3.fma(m, c);
                a4 = a4.fma(m, c);
                a5 = a5.fma(m, c);
                a6 = a6.fma(m, c);
                a7 = a7.fma(m, c);
                a8 = a8.fma(m, c);
                a9 = a9.fma(m, c);
                a10 = a10.fma(m, c);
                a11 = a11.fma(m, c);
            }
            return a0.add(a1).add(a2).add(a3).add(a4).add(a5).add(a6).add(a7).add(a8).add(a9).add(a10).add(a11)
                    .reduceLanes(VectorOperators.ADD);
        }

        float total() {
            float t = 0;
            for (float s : sums) t += s;
            return t;
        }
    }
}
