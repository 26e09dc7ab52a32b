package io.moeserve.runtime.expert;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import io.moeserve.runtime.kernel.VectorOps;
import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.TensorAccess;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/**
 * The executor against the products it stands for: each token's output is Σ weight · down(SwiGLU(x)) over its
 * experts in ascending id, computed expert by expert with the kernels' own calls. Decode's usual call, where every
 * chosen expert has one token, runs as two batched kernel calls and must give those bits too.
 */
class LocalExpertExecutorTest {
    private static final int EXPERTS = 8;
    private static final int HIDDEN = 256;
    private static final int INTERMEDIATE = 384;
    private static final Parallel TWO_THREADS = new Parallel(2);

    @AfterAll
    static void stopThreads() {
        TWO_THREADS.close();
    }

    @Test
    void everyTokenGetsTheSumOfItsExpertsWhetherTheyShareTokensOrNot() {
        try (Arena arena = Arena.ofShared()) {
            Random random = new Random(17);
            ExpertWeights[] weights = new ExpertWeights[EXPERTS];
            for (int e = 0; e < EXPERTS; e++) {
                weights[e] = new ExpertWeights(matrix(arena, INTERMEDIATE, HIDDEN, random), matrix(arena, INTERMEDIATE, HIDDEN, random),
                        matrix(arena, HIDDEN, INTERMEDIATE, random));
            }
            ExpertStore store = new ExpertStore() {
                @Override
                public ExpertWeights expert(int layer, int expert) {
                    return weights[expert];
                }

                @Override
                public int numExperts() {
                    return EXPERTS;
                }

                @Override
                public int hiddenSize() {
                    return HIDDEN;
                }

                @Override
                public int maxIntermediate() {
                    return INTERMEDIATE;
                }
            };
            int[][] choices = {
                    {5, 1, 0, 7, 3, -1}, // one token per expert (a skipped slot too): the batched path
                    {5, 1}, // decode of one sequence
                    {5, 1, 1, 7, 3, 2}, // expert 1 has two tokens: one product per expert
                    {-1, -1, -1, -1}, // no pairs at all (a pod called with nothing to compute): zeros, no report
            };
            for (Parallel threads : new Parallel[] {new Parallel(1), TWO_THREADS}) {
                CpuMatmulKernels kernels = new CpuMatmulKernels(threads);
                for (int[] experts : choices) {
                    int k = 2;
                    int n = experts.length / k;
                    float[] x = new float[n * HIDDEN];
                    float[] gateWeights = new float[n * k];
                    for (int i = 0; i < x.length; i++) x[i] = (float) random.nextGaussian();
                    for (int i = 0; i < gateWeights.length; i++) gateWeights[i] = random.nextFloat();
                    List<String> reported = new ArrayList<>();
                    LocalExpertExecutor executor = new LocalExpertExecutor(store, kernels, 8, k,
                            (layer, expert, tokens, nanos) -> reported.add(expert + ":" + tokens));
                    float[] out = new float[n * HIDDEN];
                    executor.computeExperts(1, 0, n, k, x, experts, gateWeights, out);
                    float[] expected = reference(kernels, weights, n, k, x, experts, gateWeights);
                    assertArrayEquals(expected, out, kernels.name() + " " + Arrays.toString(experts));
                    assertEquals(expectedReports(experts), reported, "one report per expert, in ascending id, with its tokens");
                }
            }
        }
    }

    /** Expert by expert in ascending id, each token alone through the kernels' own one-token calls. */
    private static float[] reference(CpuMatmulKernels kernels, ExpertWeights[] weights, int n, int k, float[] x, int[] experts,
                                     float[] gateWeights) {
        float[] out = new float[n * HIDDEN];
        float[] h = new float[INTERMEDIATE];
        float[] scratch = new float[INTERMEDIATE];
        float[] y = new float[HIDDEN];
        for (int e = 0; e < EXPERTS; e++) {
            List<Integer> slots = new ArrayList<>();
            for (int i = 0; i < experts.length; i++) if (experts[i] == e) slots.add(i);
            if (slots.isEmpty()) continue;
            if (slots.size() > 1) {
                // Several tokens run as one product, whose bits differ from one-token products: compute it as one.
                float[] gathered = new float[slots.size() * HIDDEN];
                for (int r = 0; r < slots.size(); r++) System.arraycopy(x, slots.get(r) / k * HIDDEN, gathered, r * HIDDEN, HIDDEN);
                float[] hs = new float[slots.size() * INTERMEDIATE];
                float[] ys = new float[slots.size() * HIDDEN];
                kernels.swiglu(weights[e].gate(), weights[e].up(), gathered, 0, hs, 0, new float[hs.length], 0, slots.size());
                kernels.matmul(weights[e].down(), hs, 0, ys, 0, slots.size());
                for (int r = 0; r < slots.size(); r++) {
                    int i = slots.get(r);
                    VectorOps.axpy(gateWeights[i], ys, r * HIDDEN, out, i / k * HIDDEN, HIDDEN);
                }
                continue;
            }
            int i = slots.get(0);
            kernels.swiglu(weights[e].gate(), weights[e].up(), x, i / k * HIDDEN, h, 0, scratch, 0, 1);
            kernels.matmul(weights[e].down(), h, 0, y, 0, 1);
            VectorOps.axpy(gateWeights[i], y, 0, out, i / k * HIDDEN, HIDDEN);
        }
        return out;
    }

    private static List<String> expectedReports(int[] experts) {
        List<String> reports = new ArrayList<>();
        for (int e = 0; e < EXPERTS; e++) {
            int tokens = 0;
            for (int chosen : experts) if (chosen == e) tokens++;
            if (tokens > 0) reports.add(e + ":" + tokens);
        }
        return reports;
    }

    private static WeightMatrix matrix(Arena arena, int rows, int cols, Random random) {
        MemorySegment data = arena.allocate((long) rows * cols * DType.BF16.byteSize());
        for (long i = 0; i < (long) rows * cols; i++) TensorAccess.setFloat(data, DType.BF16, i, (float) (random.nextGaussian() * 0.1));
        return new WeightMatrix("w", data, DType.BF16, rows, cols);
    }
}
