package io.moeserve.runtime.kernel;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.TensorAccess;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
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
 * The expert FFN's product on the benchmark model's shape (gate/up projection: 2816 × 1024) through
 * {@link CpuMatmulKernels}, for each weight dtype, for one token (decode: bound by memory bandwidth) and for
 * batches of tokens routed to one expert (prefill and batched experts: bound by FMA throughput).
 *
 * <p>Weights are memory-mapped from a file, as checkpoints are, and the call cycles over 32 experts (185 MB in BF16,
 * six times the 32 MB L3 of the machines we measure on; with 8, many reads still hit L3), so a one-token product
 * reads its weights from DRAM as a real decode step does. The auxiliary counters turn each call into bytes of weights read and floating-point
 * operations, so the report gives GB/s and GFLOP/s to set beside {@code bin/moe bandwidth}'s ceilings.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules=jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-XX:+UseParallelGC"})
public class MatmulBenchmark {
    static final int ROWS = 2816;
    static final int COLS = 1024;
    static final int EXPERTS = 32;

    @Param({"BF16", "F16", "F32"})
    public DType dtype;

    @Param({"1", "16", "128"})
    public int tokens;

    /** Kernel threads; 0 means one per available processor (what the services use). */
    @Param({"0"})
    public int threads;

    private Arena arena;
    private Path file;
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
    public void mapWeights() throws IOException {
        long perExpert = (long) ROWS * COLS * dtype.byteSize();
        file = Files.createTempFile("moe-matmul-bench", ".bin");
        arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            MemorySegment all = ch.map(FileChannel.MapMode.READ_WRITE, 0, perExpert * EXPERTS, arena);
            Random random = new Random(1);
            for (long i = 0; i < (long) ROWS * COLS * EXPERTS; i++) {
                TensorAccess.setFloat(all, dtype, i, (float) (random.nextGaussian() * 0.02));
            }
            experts = new WeightMatrix[EXPERTS];
            for (int e = 0; e < EXPERTS; e++) {
                experts[e] = new WeightMatrix("expert" + e, all.asSlice(e * perExpert, perExpert), dtype, ROWS, COLS);
            }
        }
        parallel = new Parallel(threads > 0 ? threads : Runtime.getRuntime().availableProcessors());
        kernels = new CpuMatmulKernels(parallel);
        x = new float[tokens * COLS];
        Random random = new Random(2);
        for (int i = 0; i < x.length; i++) x[i] = (float) random.nextGaussian();
        y = new float[tokens * ROWS];
    }

    @TearDown(Level.Trial)
    public void unmap() throws IOException {
        parallel.close();
        arena.close();
        Files.deleteIfExists(file);
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
