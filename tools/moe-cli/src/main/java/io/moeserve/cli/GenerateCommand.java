package io.moeserve.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.moeserve.runtime.generate.GenerationRequest;
import io.moeserve.runtime.generate.GenerationResult;
import io.moeserve.runtime.generate.GenerationTrace;
import io.moeserve.runtime.generate.Generator;
import io.moeserve.runtime.generate.SamplingParams;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.RoutingObserver;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * `moe generate DIR`: generates from a text prompt (needs tokenizer.json) or from prompt token ids (needs only
 * config.json and safetensors), greedy or sampled; with --json, prints the moe-serve.generation.v2 trace (ids,
 * last-prompt logits, gate choices) that tools/reference/compare.py checks against a reference.
 */
@Command(name = "generate", description = "Generate from a text prompt or from prompt token ids.")
final class GenerateCommand implements Callable<Integer> {
    @Parameters(index = "0", description = "Checkpoint directory.")
    Path dir;

    @ArgGroup(exclusive = true, multiplicity = "1")
    PromptSource prompt;

    static final class PromptSource {
        @Option(names = "--prompt", description = "Prompt text (tokenized with the checkpoint's tokenizer.json).")
        String text;

        @Option(names = "--prompt-ids", split = ",", description = "Prompt token ids, comma-separated.")
        int[] ids;
    }

    @Option(names = "--chat", description = "Render --prompt as a user message through the checkpoint's chat template.")
    boolean chat;

    @Option(names = "--system", description = "System message for --chat.")
    String system;

    @Option(names = "--max-new-tokens", defaultValue = "32")
    int maxNewTokens;

    @Option(names = "--temperature", defaultValue = "0", description = "0 = greedy (default).")
    float temperature;

    @Option(names = "--top-k", defaultValue = "0")
    int topK;

    @Option(names = "--top-p", defaultValue = "1")
    float topP;

    @Option(names = "--min-p", defaultValue = "0")
    float minP;

    @Option(names = "--repetition-penalty", defaultValue = "1")
    float repetitionPenalty;

    @Option(names = "--frequency-penalty", defaultValue = "0")
    float frequencyPenalty;

    @Option(names = "--presence-penalty", defaultValue = "0")
    float presencePenalty;

    @Option(names = "--seed", description = "Seed for sampling (reproducible runs).")
    Long seed;

    @Option(names = "--stop-id", split = ",", description = "Extra stop token ids.")
    int[] stopIds;

    @Option(names = "--ignore-eos", description = "Do not stop at the model's eos_token_id.")
    boolean ignoreEos;

    @Option(names = "--json", description = "Print JSON: generated ids, last-prompt logits and gate choices.")
    boolean json;

    @Mixin
    RuntimeOptions runtime;

    @Override
    public Integer call() throws Exception {
        try (MoeModel model = MoeModel.load(dir, runtime.modelOptions(dir));
             PromptText text = prompt.text != null ? PromptText.load(dir) : null) {
            int[] ids = prompt.ids != null ? prompt.ids : text.encode(prompt.text, chat, system);
            for (int id : ids) {
                if (id < 0 || id >= model.config().vocabSize()) {
                    throw new IllegalArgumentException("prompt token id " + id + " is outside the vocabulary [0, " + model.config().vocabSize()
                            + ")");
                }
            }
            SamplingParams sampling = new SamplingParams(temperature, topK, topP, minP, repetitionPenalty,
                    frequencyPenalty, presencePenalty, seed);
            int[] stops = stopTokens(model);
            GenerationRequest request = new GenerationRequest(ids, sampling, maxNewTokens, stops);
            if (json) {
                GenerationTrace trace = GenerationTrace.run(model, request);
                ObjectMapper mapper = new ObjectMapper();
                var node = trace.toJson(mapper);
                if (runtime.offloadReport() != null) node.put("offload", runtime.offloadReport());
                System.out.println(mapper.writeValueAsString(node));
                return 0;
            }
            Generator generator = new Generator(model, model.newKvCache(ids.length + maxNewTokens + 16, 1));
            long start = System.nanoTime();
            GenerationResult result;
            if (text != null) {
                result = generator.generate(List.of(request), (s, token) -> {
                    System.out.print(text.stream(token));
                    System.out.flush();
                }, RoutingObserver.NONE, null).getFirst();
                System.out.println(text.flushStream());
            } else {
                result = generator.generate(request);
                System.out.println(Arrays.toString(result.outputTokens()));
            }
            double seconds = (System.nanoTime() - start) / 1e9;
            System.err.printf("[%d prompt + %d generated tokens in %.2f s, finish: %s]%n", ids.length,
                    result.outputTokens().length, seconds, result.finishReason().name().toLowerCase());
            if (runtime.offloadReport() != null) System.err.println("[" + runtime.offloadReport() + "]");
        }
        return 0;
    }

    private int[] stopTokens(MoeModel model) {
        List<Integer> eos = ignoreEos ? List.of() : model.config().eosTokenIds();
        int extra = stopIds == null ? 0 : stopIds.length;
        int[] stops = new int[eos.size() + extra];
        for (int i = 0; i < eos.size(); i++) stops[i] = eos.get(i);
        if (stopIds != null) System.arraycopy(stopIds, 0, stops, eos.size(), extra);
        return stops;
    }
}
