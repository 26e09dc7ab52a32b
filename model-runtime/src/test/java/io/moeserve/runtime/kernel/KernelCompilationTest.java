package io.moeserve.runtime.kernel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.Quantization;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Every kernel must compile in both JIT tiers. The Vector API is only fast once C2 compiles a kernel; below C2 it
 * runs as plain Java objects. A kernel method a tier cannot compile is not an error the JVM reports: the method stays
 * at a lower tier. That happened in an expert pod (C1: "out of virtual registers" on an earlier, one-method-per-dtype
 * SmallBatchKernel, whose pod then ran it a hundred times slower), though not in a JVM that only runs the kernels,
 * so this test cannot replay that instance; it holds the kernels to what would have shown it: it runs them in a
 * fresh JVM with {@code -XX:+PrintCompilation}, big products first (so their loops are compiled on stack
 * replacement, as in a pod) then many small ones, and fails if any kernel method's compile was skipped or a main
 * kernel never reached C2 (tier 4).
 */
class KernelCompilationTest {

    @Test
    void everyKernelCompilesInBothTiers() throws IOException, InterruptedException {
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        Process p = new ProcessBuilder(java.toString(), "--add-modules=jdk.incubator.vector",
                "--enable-native-access=ALL-UNNAMED", "-XX:+PrintCompilation",
                "-cp", System.getProperty("java.class.path"), Workout.class.getName())
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(5, TimeUnit.MINUTES), "the workout did not finish");
        assertEquals(0, p.exitValue(), out.lines().filter(l -> !l.contains("::")).toList().toString());
        List<String> skipped = out.lines()
                .filter(l -> l.contains("io.moeserve.runtime.kernel.") && l.contains("COMPILE SKIPPED")).toList();
        assertTrue(skipped.isEmpty(), "kernel compiles skipped:\n" + String.join("\n", skipped));
        // The child JVM runs at the preferred width, as this one does (this test is not among the narrowed ones).
        boolean tables = Simd.LANES == 16;
        for (String kernel : List.of("MatvecKernel::bf16", "MatvecKernel::f16", "MatvecKernel::f32",
                "SmallBatchKernel::tileBf16", "SmallBatchKernel::tileF16", "SmallBatchKernel::tileF32",
                "GemmKernel::tile4x4", "Simd::sumGroup", "QuantizedKernel::matvecE4m3", "QuantizedKernel::groupsInt8",
                "QuantizedKernel::groupsPackedInt8", tables ? "QuantizedKernel::groupsInt4Table" : "QuantizedKernel::groupsPackedInt4",
                "QuantizedKernel::groupsPackedInt2", "QuantizedKernel::widen", "QuantizedKernel::mxfp4Rows",
                "QuantizedKernel::widenMxfp4", "QuantizedSmallBatchKernel::tileInt8", "QuantizedSmallBatchKernel::tilePackedInt8",
                tables ? "QuantizedSmallBatchKernel::tileInt4Table" : "QuantizedSmallBatchKernel::tilePackedInt4")) {
            // PrintCompilation: timestamp, compile id, flags, tier, method.
            boolean c2 = out.lines().anyMatch(l -> l.contains("io.moeserve.runtime.kernel." + kernel + " ")
                    && l.matches("\\s*\\d+\\s+\\d+\\s+[%sbn! ]*4\\s+.*") && !l.contains("made not entrant"));
            assertTrue(c2, kernel + " never reached C2");
        }
    }

    /** Runs every kernel path: one-token, small-batch and packed products, each dtype, big then small shapes. */
    public static final class Workout {
        public static void main(String[] args) {
            Random random = new Random(1);
            try (Arena arena = Arena.ofShared(); Parallel parallel = new Parallel(1)) {
                CpuMatmulKernels kernels = new CpuMatmulKernels(parallel);
                int[] tokens = {1, 3, 8, 16};
                float[] x = new float[16 * 1030];
                float[] y = new float[16 * 4096];
                DType[] dtypes = {DType.F32, DType.BF16, DType.F16};
                Quantization.Scheme[] schemes = Quantization.Scheme.values();
                WeightMatrix[] small = new WeightMatrix[dtypes.length + schemes.length];
                for (DType dtype : dtypes) {
                    // Big enough that the first call's loops pass C1's on-stack-replacement threshold, as an
                    // expert's first products in a pod do.
                    WeightMatrix big = MatmulKernelsDifferentialTest.randomMatrix(arena, dtype, 4096, 1030, random);
                    for (int n : tokens) kernels.matmul(big, x, 0, y, 0, n);
                    small[dtype.ordinal()] = MatmulKernelsDifferentialTest.randomMatrix(arena, dtype, 8, 100, random);
                }
                for (Quantization.Scheme scheme : schemes) {
                    // MXFP4 takes whole groups of 32 columns only.
                    boolean mx = scheme == Quantization.Scheme.MXFP4;
                    WeightMatrix big = QuantizedKernelDifferentialTest.randomQuantized(arena, scheme, 4096, mx ? 1024 : 1030, 1,
                            mx ? 32 : 128, false, random);
                    for (int n : tokens) kernels.matmul(big, x, 0, y, 0, n);
                    small[dtypes.length + scheme.ordinal()] =
                            QuantizedKernelDifferentialTest.randomQuantized(arena, scheme, 8, mx ? 96 : 100, 1, 32, false, random);
                }
                // Then many small products, long enough for C2's queue to reach every kernel.
                long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(4);
                for (int i = 0; i < 30_000 || System.nanoTime() < end; i++) {
                    for (WeightMatrix w : small) for (int n : tokens) kernels.matmul(w, x, 0, y, 0, n);
                }
            }
        }
    }
}
