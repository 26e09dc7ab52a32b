package io.moeserve.runtime.kernel;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Quantization;
import io.moeserve.runtime.tensor.TensorAccess;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * One expert projection of gpt-oss's shape (2880 × 2880) in each weight format the kernels read: BF16, int8, int4, int3
 * and int2 in groups of 32 (compressed-tensors pack-quantized, BF16 scales; mixed-precision experts) and MXFP4 (E2M1
 * codes, an E8M0 scale per 32), through
 * {@link CpuMatmulKernels}. The call cycles over 24 experts (about 400 MB in BF16, 110 MB in int4 or MXFP4, each
 * several times the L3) so one-token products read their weights from DRAM, as decode does. The counters give weight
 * bytes read per second (codes and scales) and floating-point operations per second.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-XX:+UseParallelGC"})
public class WeightFormatBenchmark {
    static final int ROWS = 2880;
    static final int COLS = 2880;
    static final int EXPERTS = 24;

    @Param({"BF16", "INT8", "INT4", "INT3", "INT2", "MXFP4"})
    public String format;

    @Param({"1", "4", "16"})
    public int tokens;

    /** Kernel threads; 0 means one per available processor (what the services use). */
    @Param({"0"})
    public int threads;

    private Arena arena;
    private WeightMatrix[] experts;
    private CpuMatmulKernels kernels;
    private Parallel parallel;
    private float[] x;
    private float[] y;
    private int next;

    /** Per-second rates of weight bytes read and of floating-point operations (2 per multiply-add). */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class Work {
        public long weightBytes;
        public long flops;
    }

    @Setup(Level.Trial)
    public void makeWeights() {
        arena = Arena.ofShared();
        Random random = new Random(1);
        experts = new WeightMatrix[EXPERTS];
        for (int e = 0; e < EXPERTS; e++) {
            experts[e] = switch (format) {
                case "BF16" -> MatmulKernelsDifferentialTest.randomMatrix(arena, DType.BF16, ROWS, COLS, random);
                case "INT8" -> packed(random, Quantization.Scheme.PACKED_INT8);
                case "INT4" -> packed(random, Quantization.Scheme.PACKED_INT4);
                case "INT3" -> packed(random, Quantization.Scheme.PACKED_INT3);
                case "INT2" -> packed(random, Quantization.Scheme.PACKED_INT2);
                case "MXFP4" -> QuantizedKernelDifferentialTest.randomMxfp4(arena, ROWS, COLS, 118, 130, random);
                default -> throw new IllegalArgumentException("format " + format);
            };
        }
        parallel = new Parallel(threads > 0 ? threads : Runtime.getRuntime().availableProcessors());
        kernels = new CpuMatmulKernels(parallel);
        x = new float[tokens * COLS];
        for (int i = 0; i < x.length; i++) x[i] = (float) random.nextGaussian();
        y = new float[tokens * ROWS];
    }

    /** Random pack-quantized int8, int4, int3 or int2 codes, BF16 scales in groups of 32, as a compressed-tensors checkpoint has. */
    private WeightMatrix packed(Random random, Quantization.Scheme scheme) {
        WeightMatrix codes = QuantizedKernelDifferentialTest.randomQuantized(arena, scheme, ROWS, COLS, 1, 32, false, random);
        long count = (long) ROWS * (COLS / 32);
        MemorySegment scales = arena.allocate(2 * count);
        for (long i = 0; i < count; i++) TensorAccess.setFloat(scales, DType.BF16, i, 0.01f + 0.09f * random.nextFloat());
        return new WeightMatrix(scheme.name(), codes.data(), codes.dtype(), ROWS, COLS,
                new Quantization(scheme, scales, DType.BF16, 1, 32, null));
    }

    @TearDown(Level.Trial)
    public void free() {
        parallel.close();
        arena.close();
    }

    @Benchmark
    public float expertProjection(Work work) {
        WeightMatrix w = experts[next];
        next = (next + 1) % EXPERTS;
        kernels.matmul(w, x, 0, y, 0, tokens);
        work.weightBytes += w.byteSize();
        work.flops += 2L * ROWS * COLS * tokens;
        return y[0];
    }
}
