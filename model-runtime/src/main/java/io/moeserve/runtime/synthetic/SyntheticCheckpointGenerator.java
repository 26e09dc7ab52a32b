package io.moeserve.runtime.synthetic;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.checkpoint.ShardedCheckpointWriter;
import io.moeserve.runtime.checkpoint.TensorSpec;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.family.ExpectedTensor;
import io.moeserve.runtime.family.TensorLayout;
import io.moeserve.runtime.family.TensorRole;
import io.moeserve.runtime.quantize.Mxfp4;
import io.moeserve.runtime.tensor.DType;
import io.moeserve.runtime.tensor.TensorAccess;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * Writes a loadable Hugging Face checkpoint with random weights: config.json, generation_config.json and
 * safetensors (single or sharded with an index) holding exactly the tensors {@link TensorLayout} names. The
 * tokenizer files are another module's (the moe command's {@code SyntheticModel} writes both); the model and its
 * tests need only these.
 *
 * <p>Weights are deterministic in (seed, tensor name), independent of write order, and scaled so activations stay
 * O(1) through the layers (linear weights ~ U with std 1/√fan_in; norms near 1). Gate weights are scaled up so
 * that expert choices are clear-cut rather than near-ties, which makes routing comparisons between implementations
 * meaningful.
 */
public final class SyntheticCheckpointGenerator {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /**
     * @param arch          architecture to generate
     * @param size          preset size
     * @param dtype         dtype of the weights (the noaux_tc correction bias stays F32, as in real checkpoints)
     * @param seed          weight seed
     * @param maxShardBytes shard size limit; with {@code forceSharded}, an index is written even for one shard
     * @param experts       how the routed experts are stored
     */
    public record Spec(Architecture arch, SyntheticConfigs.Size size, DType dtype, long seed, long maxShardBytes,
                       boolean forceSharded, ExpertFormat experts) {
        public Spec {
            if (experts != ExpertFormat.FLOAT && arch != Architecture.GPT_OSS) {
                throw new IllegalArgumentException("MXFP4 experts are gpt-oss's format; " + arch.shortName() + " ships float experts");
            }
        }

        /** Float experts in {@code dtype}. */
        public Spec(Architecture arch, SyntheticConfigs.Size size, DType dtype, long seed, long maxShardBytes, boolean forceSharded) {
            this(arch, size, dtype, seed, maxShardBytes, forceSharded, ExpertFormat.FLOAT);
        }

        public static Spec tiny(Architecture arch) {
            return new Spec(arch, SyntheticConfigs.Size.TINY, DType.F32, 1234, 1L << 40, false);
        }

        public Spec withExperts(ExpertFormat format) {
            return new Spec(arch, size, dtype, seed, maxShardBytes, forceSharded, format);
        }
    }

    /**
     * How a synthetic gpt-oss checkpoint stores its experts. The two MXFP4 forms hold the same weights: drawn as the
     * float form draws them, then rounded to MXFP4 ({@code quantize.Mxfp4}, transformers' rule).
     */
    public enum ExpertFormat {
        /** In the checkpoint's float dtype, as drawn. */
        FLOAT,
        /** As the hub ships gpt-oss: {@code *_blocks} and {@code *_scales}, with quantization_config mxfp4. */
        MXFP4,
        /**
         * In the float dtype, holding exactly the MXFP4 form's dequantized weights: what transformers saves after
         * dequantizing (the MXFP4 checkpoint's twin).
         */
        MXFP4_DEQUANTIZED
    }

    /**
     * The special token ids config.json and generation_config.json name.
     *
     * @param bos     bos_token_id
     * @param eos     config.json's eos_token_id (the end of a chat turn)
     * @param stopIds generation_config.json's eos_token_id list
     */
    public record SpecialTokens(int bos, int eos, List<Integer> stopIds) {
        /**
         * The vocabulary's last three ids as end-of-text, turn start and turn end: where a synthetic ChatML
         * tokenizer whose vocabulary fills V puts them.
         */
        public static SpecialTokens lastIdsOf(int vocabSize) {
            int endOfText = vocabSize - 3;
            return new SpecialTokens(endOfText, vocabSize - 1, List.of(vocabSize - 1, endOfText));
        }
    }

    private SyntheticCheckpointGenerator() {}

    /**
     * Generates into {@code dir} (created) and returns the parsed config of what was written; the special tokens
     * are the vocabulary's last ids ({@link SpecialTokens#lastIdsOf}).
     */
    public static ModelConfig generate(Path dir, Spec spec) {
        return generate(dir, spec, SpecialTokens.lastIdsOf(SyntheticConfigs.vocabSize(spec.arch(), spec.size())));
    }

    /** Generates into {@code dir} (created) and returns the parsed config of what was written. */
    public static ModelConfig generate(Path dir, Spec spec, SpecialTokens specials) {
        try {
            Files.createDirectories(dir);
            String torchDtype = switch (spec.dtype()) {
                case F32 -> "float32";
                case BF16 -> "bfloat16";
                case F16 -> "float16";
                default -> throw new IllegalArgumentException("synthetic checkpoints are F32, BF16 or F16, not " + spec.dtype());
            };
            ObjectNode config = SyntheticConfigs.config(spec.arch(), spec.size(), torchDtype);
            if (spec.experts() == ExpertFormat.MXFP4) {
                // gpt-oss's own list: only the routed experts are MXFP4 (transformers adds lm_head itself).
                ObjectNode q = config.putObject("quantization_config");
                q.put("quant_method", "mxfp4");
                q.putArray("modules_to_not_convert").add("model.layers.*.self_attn").add("model.layers.*.mlp.router")
                        .add("model.embed_tokens").add("lm_head");
            }
            config.put("eos_token_id", specials.eos());
            config.put("bos_token_id", specials.bos());
            Files.writeString(dir.resolve("config.json"), JSON.writeValueAsString(config), StandardCharsets.UTF_8);
            ObjectNode generation = JSON.createObjectNode();
            generation.put("bos_token_id", specials.bos());
            var stops = generation.putArray("eos_token_id");
            specials.stopIds().forEach(stops::add);
            generation.put("do_sample", false);
            generation.put("transformers_version", "4.57.0");
            Files.writeString(dir.resolve("generation_config.json"), JSON.writeValueAsString(generation), StandardCharsets.UTF_8);

            ModelConfig parsed = ConfigParser.parse(config, dir.resolve("config.json").toString());
            List<TensorSpec> tensors = new ArrayList<>();
            for (ExpectedTensor t : new TensorLayout(parsed).expectedTensors()) {
                if (t.role() == TensorRole.EXPERTS_IN_OUT && spec.experts() != ExpertFormat.FLOAT) {
                    mxfp4Experts(t, spec, tensors);
                    continue;
                }
                DType dtype = t.role() == TensorRole.SCORE_BIAS ? DType.F32 : spec.dtype();
                tensors.add(new TensorSpec(t.name(), dtype, t.shape(), target -> fill(target, dtype, t, spec.seed())));
            }
            for (ExpectedTensor t : spec.arch().family().unusedTensors(parsed)) {
                tensors.add(new TensorSpec(t.name(), spec.dtype(), t.shape(), target -> fill(target, spec.dtype(), t, spec.seed())));
            }
            ShardedCheckpointWriter.write(dir, tensors, spec.maxShardBytes(), spec.forceSharded());
            return ConfigParser.load(dir);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write synthetic checkpoint to " + dir, e);
        }
    }

    /**
     * A fused [E, in, out] expert tensor as MXFP4 ({@code name_blocks} [E, out, in / 32, 16] and {@code name_scales}
     * [E, out, in / 32], output-major as the hub stores them), or as its dequantized values in the float dtype.
     */
    private static void mxfp4Experts(ExpectedTensor t, Spec spec, List<TensorSpec> out) {
        int experts = (int) t.shape()[0];
        int in = (int) t.shape()[1];
        int outs = (int) t.shape()[2];
        // Drawn as the float form draws the tensor, then quantized expert by expert.
        Supplier<Mxfp4.Quantized[]> quantized = () -> {
            float[] drawn = new float[experts * in * outs];
            fill(MemorySegment.ofArray(drawn), DType.F32, t, spec.seed());
            return Mxfp4.quantizeFused(i -> drawn[(int) i], experts, in, outs);
        };
        if (spec.experts() == ExpertFormat.MXFP4) {
            out.addAll(Mxfp4.fusedTensors(t.name(), experts, in, outs, quantized));
            return;
        }
        out.add(new TensorSpec(t.name(), spec.dtype(), t.shape(), target -> {
            Mxfp4.Quantized[] q = quantized.get();
            for (int x = 0; x < experts; x++) {
                float[] w = Mxfp4.dequantize(q[x].blocks(), q[x].scales(), outs, in);
                long base = (long) x * in * outs;
                for (int i = 0; i < in; i++) {
                    for (int o = 0; o < outs; o++) TensorAccess.setFloat(target, spec.dtype(), base + (long) i * outs + o, w[o * in + i]);
                }
            }
        }));
    }

    private static void fill(MemorySegment target, DType dtype, ExpectedTensor t, long seed) {
        long state = mix(seed ^ mix(t.name().hashCode() * 0x9E3779B97F4A7C15L + t.name().length()));
        long n = t.numElements();
        boolean gate = t.name().contains(".gate.") || t.name().endsWith("gate.weight") && !t.name().contains("experts");
        float halfWidth; // uniform on [-halfWidth, halfWidth] has std halfWidth/√3
        float center = 0f;
        switch (t.role()) {
            case EMBEDDING, CONSTANT_VECTOR -> halfWidth = (float) Math.sqrt(3);
            case LINEAR, EXPERTS_IN_OUT -> halfWidth = (float) (Math.sqrt(3) / Math.sqrt(t.fanIn()) * (gate ? 4 : 1));
            case NORM -> {
                center = 1f;
                halfWidth = 0.2f;
            }
            case BIAS -> halfWidth = 0.2f;
            case SCORE_BIAS -> halfWidth = 0.05f;
            case ATTENTION_SINK -> {
                // Trained sinks are logits of the scores' own size: large enough to take a visible share.
                center = 1f;
                halfWidth = 2f;
            }
            default -> throw new IllegalStateException(t.role().toString());
        }
        for (long i = 0; i < n; i++) {
            state += 0x9E3779B97F4A7C15L;
            long z = mix(state);
            float u = ((z >>> 40) * 0x1.0p-24f) * 2f - 1f;
            TensorAccess.setFloat(target, dtype, i, center + u * halfWidth);
        }
    }

    /** SplitMix64's finaliser. */
    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
