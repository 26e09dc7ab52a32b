package io.moeserve.cli;

import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.config.AttentionConfig;
import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.config.MoeConfig;
import io.moeserve.runtime.expert.ExpertLoader;
import io.moeserve.runtime.expert.ExpertSet;
import io.moeserve.runtime.expert.ExpertWeights;
import io.moeserve.runtime.family.ExpectedTensor;
import io.moeserve.runtime.family.TensorLayout;
import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.KvCacheDtype;
import io.moeserve.runtime.tensor.DType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

/** `moe inspect DIR`: what a checkpoint is: architecture, sizes, experts, parameters by dtype, memory. */
@Command(name = "inspect", description = "Describe a checkpoint: architecture, parameters, experts, dtypes, memory.")
final class InspectCommand implements Callable<Integer> {
    @Parameters(index = "0", description = "Checkpoint directory (config.json + safetensors).")
    Path dir;

    @Override
    public Integer call() {
        ModelConfig c = ConfigParser.load(dir);
        try (Checkpoint ck = Checkpoint.open(dir)) {
            MoeConfig m = c.moe();
            AttentionConfig a = c.attention();
            long total = 0;
            for (ExpectedTensor t : new TensorLayout(c).expectedTensors()) total += t.numElements();
            long expertParams = 0;
            long perExpert = 3L * c.hiddenSize() * m.expertIntermediate();
            expertParams = perExpert * m.numFfnExperts() * c.numSparseLayers();
            long denseParams = 0;
            for (ExpectedTensor t : new TensorLayout(c).expectedTensors()) {
                if (!t.name().contains(".experts.")) denseParams += t.numElements();
            }
            long active = denseParams + perExpert * m.topK() * c.numSparseLayers() - (c.tieWordEmbeddings() ? 0 : 0);
            System.out.printf("checkpoint     %s%n", dir);
            System.out.printf("architecture   %s%n", c.architecture().hfClassName());
            System.out.printf("layers         %d (%d MoE, %d dense)%n", c.numLayers(), c.numSparseLayers(), c.numLayers() - c.numSparseLayers());
            System.out.printf("hidden         %d, vocab %d, max positions %d%n", c.hiddenSize(), c.vocabSize(), c.maxPositionEmbeddings());
            long sliding = Arrays.stream(a.slidingWindow()).filter(w -> w > 0).count();
            System.out.printf("attention      %s, %d heads, %d kv heads, qk head %d, v head %d%s%s%n",
                    a.kind() == AttentionConfig.Kind.GROUPED_QUERY ? "grouped-query" : "multi-head latent",
                    a.numHeads(), a.numKvHeads(), a.qkHeadDim(), a.vHeadDim(),
                    sliding == 0 ? "" : String.format("; %d of %d layers slide (window %d)", sliding, c.numLayers(),
                            Arrays.stream(a.slidingWindow()).max().orElse(0)),
                    a.sinks() ? "; attention sinks" : "");
            System.out.printf("rotary         %d of each q/k head's %d elements, %s pairs%n", c.rope().rotaryDim(), a.qkHeadDim(),
                    c.rope().interleaved() ? "adjacent" : "half-split");
            System.out.printf("experts        %d routed per MoE layer (%d FFN), top-%d, expert FFN width %d%s%n",
                    m.numExperts(), m.numFfnExperts(), m.topK(), m.expertIntermediate(),
                    m.clampedExperts() ? String.format(", clamped SwiGLU with biases (limit %s)", m.swigluLimit()) : "");
            System.out.printf("gate           %s%n", m.gate().describe());
            if (m.sharedIntermediate() > 0) System.out.printf("shared expert  width %d%n", m.sharedIntermediate());
            System.out.printf("parameters     %s total; routed experts %s; active per token ≈ %s%n", human(total), human(expertParams),
                    human(active));
            System.out.printf("quantization   %s%n", ck.quantization().describe());
            for (Map.Entry<DType, Long> e : ck.parameterCountByDType().entrySet()) {
                System.out.printf("  %-7s      %s elements stored%n", e.getKey(), human(e.getValue()));
            }
            int layer = 0;
            while (!c.isSparse(layer)) layer++;
            ExpertWeights one = ExpertLoader.loadHosted(c, ck, ExpertSet.parse(layer + ":0")).expert(layer, 0);
            System.out.printf("one expert     %s (%s), %.2f MiB%n", one.matrices().getFirst().formatName(), one.down().formatName(),
                    one.byteSize() / (double) (1 << 20));
            System.out.printf("weights        %.2f GiB on disk (memory-mapped)%n", ck.totalBytes() / (double) (1L << 30));
            System.out.printf("kv cache       %d KiB per token (float32), %d KiB in bf16 (--kv-cache-dtype bf16)%n", KvCache.bytesPerToken(c) / 1024,
                    KvCache.bytesPerToken(c, KvCacheDtype.BF16) / 1024);
            System.out.printf("eos token ids  %s%n", c.eosTokenIds());
            System.out.printf("tokenizer      %s%n", Files.isRegularFile(dir.resolve("tokenizer.json")) ? "tokenizer.json"
                    : "none (use --prompt-ids)");
        }
        return 0;
    }

    static String human(long n) {
        if (n >= 1_000_000_000L) return String.format("%.2f B", n / 1e9);
        if (n >= 1_000_000L) return String.format("%.2f M", n / 1e6);
        if (n >= 1_000L) return String.format("%.1f K", n / 1e3);
        return Long.toString(n);
    }
}
