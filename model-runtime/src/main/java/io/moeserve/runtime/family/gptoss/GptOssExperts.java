package io.moeserve.runtime.family.gptoss;

import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.config.MoeConfig;
import io.moeserve.runtime.expert.ClampedGlu;
import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.expert.ExpertWeights;
import io.moeserve.runtime.tensor.HugePages;
import io.moeserve.runtime.tensor.Tensor;
import io.moeserve.runtime.tensor.WeightMatrix;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * gpt-oss's routed experts of one layer, from the checkpoint's fused tensors.
 *
 * <p>Two layouts. transformers' own ({@code save_pretrained} of a dequantized model, the BF16 checkpoints on the
 * hub) stores {@code gate_up_proj [E, H, 2I]} and {@code down_proj [E, I, H]} input-major, for {@code x @ W}. The
 * kernels here read output rows, so each hosted expert is transposed once, at load, into memory of its own (same
 * dtype, same bytes, in huge pages where granted; the file's pages are then no longer needed): a pod pays this for
 * the experts it hosts only.
 * The hub's MXFP4 checkpoints are already output-major and are used where they are mapped.
 *
 * <p>gate_up keeps the checkpoint's interleaving (even rows gate, odd rows up): {@link ClampedGlu} reads it so.
 */
final class GptOssExperts {
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED;

    private GptOssExperts() {}

    /** @param prefix the layer's {@code mlp.experts.} */
    static ExpertWeights[] load(ModelConfig c, Checkpoint ck, String prefix, int layer, ExpertSelection hosted) {
        MoeConfig m = c.moe();
        int e = m.numExperts();
        int h = c.hiddenSize();
        int w = m.expertIntermediate();
        String p = prefix;
        float[] gateUpBias = ck.tensor(p + "gate_up_proj_bias", e, 2L * w).toFloatArray();
        float[] downBias = ck.tensor(p + "down_proj_bias", e, h).toFloatArray();
        ExpertWeights[] out = new ExpertWeights[e];
        if (ck.contains(p + "gate_up_proj_blocks")) {
            // The hub's MXFP4: output-major already, so each expert is a view of the mapped codes and scales.
            WeightMatrix gateUp = ck.mxfp4Matrix(p + "gate_up_proj", 2L * w, h);
            WeightMatrix down = ck.mxfp4Matrix(p + "down_proj", h, w);
            for (int x = 0; x < e; x++) {
                if (!hosted.hosts(layer, x)) continue;
                out[x] = ExpertWeights.clamped(gateUp.rowSlice(gateUp.name() + "[" + x + "]", x * 2 * w, 2 * w),
                        down.rowSlice(down.name() + "[" + x + "]", x * h, h), glu(m, gateUpBias, downBias, x, h));
            }
            return out;
        }
        Tensor gateUp = ck.tensor(p + "gate_up_proj", e, h, 2L * w);
        Tensor down = ck.tensor(p + "down_proj", e, w, h);
        gateUp.requireFloat();
        down.requireFloat();
        int hostedHere = 0;
        for (int x = 0; x < e; x++) if (hosted.hosts(layer, x)) hostedHere++;
        // One block for the layer's hosted experts, in huge pages: their rows stream once per decode step.
        long gateUpBytes = 2L * w * h * gateUp.dtype().byteSize();
        long downBytes = (long) h * w * down.dtype().byteSize();
        MemorySegment block = HugePages.allocate(hostedHere * (gateUpBytes + downBytes));
        long at = 0;
        for (int x = 0; x < e; x++) {
            if (!hosted.hosts(layer, x)) continue;
            WeightMatrix gu = transposed(gateUp, x, h, 2 * w, block.asSlice(at, gateUpBytes));
            WeightMatrix dn = transposed(down, x, w, h, block.asSlice(at + gateUpBytes, downBytes));
            at += gateUpBytes + downBytes;
            out[x] = ExpertWeights.clamped(gu, dn, glu(m, gateUpBias, downBias, x, h));
        }
        return out;
    }

    /** Expert x's biases and clamp. */
    private static ClampedGlu glu(MoeConfig m, float[] gateUpBias, float[] downBias, int x, int h) {
        int w = m.expertIntermediate();
        return new ClampedGlu(Arrays.copyOfRange(gateUpBias, x * 2 * w, (x + 1) * 2 * w),
                Arrays.copyOfRange(downBias, x * h, (x + 1) * h), m.swigluLimit());
    }

    /** Expert x of an [E, in, out] tensor as an [out, in] matrix of the same dtype, copied once into {@code dst}. */
    static WeightMatrix transposed(Tensor t, int x, int in, int out, MemorySegment dst) {
        int size = t.dtype().byteSize();
        MemorySegment src = t.data().asSlice((long) x * in * out * size, (long) in * out * size);
        // Tiles of 64×64 keep both sides' cache lines in use while one walks rows and the other columns.
        int tile = 64;
        for (int i0 = 0; i0 < in; i0 += tile) {
            for (int o0 = 0; o0 < out; o0 += tile) {
                int i1 = Math.min(in, i0 + tile);
                int o1 = Math.min(out, o0 + tile);
                for (int i = i0; i < i1; i++) {
                    for (int o = o0; o < o1; o++) {
                        long from = (long) i * out + o;
                        long to = (long) o * in + i;
                        switch (size) {
                            case 2 -> dst.setAtIndex(U16, to, src.getAtIndex(U16, from));
                            case 4 -> dst.setAtIndex(U32, to, src.getAtIndex(U32, from));
                            default -> MemorySegment.copy(src, from * size, dst, to * size, size);
                        }
                    }
                }
            }
        }
        return new WeightMatrix(t.name() + "[" + x + "]ᵀ", dst, t.dtype(), out, in);
    }

}
