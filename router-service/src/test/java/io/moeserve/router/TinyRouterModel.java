package io.moeserve.router;

import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.generate.GenerationRequest;
import io.moeserve.runtime.generate.Generator;
import io.moeserve.runtime.generate.SamplingParams;
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.ModelOptions;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.RoutingObserver;
import io.moeserve.runtime.synthetic.SyntheticCheckpointGenerator;
import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** A tiny generated Mixtral-shaped checkpoint for router tests, and the runtime's own output on it. */
public class TinyRouterModel implements QuarkusTestResourceLifecycleManager {
    static final String MODEL_ID = "tiny-router";
    static Path dir;

    static synchronized Path dir() {
        if (dir == null) {
            try {
                dir = Files.createTempDirectory("router-test").resolve(MODEL_ID);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            SyntheticCheckpointGenerator.generate(dir, SyntheticCheckpointGenerator.Spec.tiny(Architecture.MIXTRAL));
            writeTokenizer(dir);
        }
        return dir;
    }

    /** Multi-byte pieces of the test tokenizer, after the 256 single bytes. */
    static final String[] PIECES = {"{\"", "\":", "\": ", ",\"", "\"}", "}}", "]}", "[\"", "\",", "true", "false", "null",
        "12", "0.", "-1", "name", "\"name\"", "age", "abc", " \"", "\\u00", "{}", "[]", ", ", "\"a\"", "é"};

    /**
     * A byte-level tokenizer.json over the model's 384 ids (the router reads each token's bytes from it for
     * structured output): the 256 bytes in GPT-2's alphabet, {@link #PIECES}, filler pieces, and the last three
     * ids (the checkpoint's end-of-sequence ids among them) as special added tokens.
     */
    static void writeTokenizer(Path dir) {
        int vocab = 384;
        com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
        var root = json.createObjectNode();
        var model = root.putObject("model");
        model.put("type", "BPE");
        var pieces = model.putObject("vocab");
        for (int id = 0; id < vocab - 3; id++) pieces.put(piece(id), id);
        var added = root.putArray("added_tokens");
        for (int id = vocab - 3; id < vocab; id++) added.addObject().put("id", id).put("content", "<|special" + id + "|>").put("special", true);
        root.putObject("decoder").put("type", "ByteLevel");
        try {
            json.writeValue(dir.resolve("tokenizer.json").toFile(), root);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The byte-level spelling of token {@code id}'s text. */
    static String piece(int id) {
        byte[] bytes = bytes(id);
        StringBuilder b = new StringBuilder();
        for (byte x : bytes) b.append(byteChar(x & 0xff));
        return b.toString();
    }

    /** The bytes of token {@code id} (not special). */
    static byte[] bytes(int id) {
        if (id < 256) return new byte[] {(byte) id};
        int k = id - 256;
        String text = k < PIECES.length ? PIECES[k] : "w" + k;
        return text.getBytes(java.nio.charset.StandardCharsets.UTF_8);
    }

    private static char byteChar(int b) {
        int next = 0;
        for (int x = 0; x < 256; x++) {
            boolean printable = (x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF);
            if (x == b) return printable ? (char) x : (char) (256 + next);
            if (!printable) next++;
        }
        throw new IllegalArgumentException();
    }

    @Override
    public Map<String, String> start() {
        Map<String, String> m = new HashMap<>();
        m.put("moe.model.path", dir().toString());
        m.put("moe.router.batching.max-step-tokens", "16");
        m.put("moe.router.batching.max-sequences", "8");
        m.put("moe.router.batching.max-context", "256");
        return m;
    }

    @Override
    public void stop() {
    }

    /** What the runtime generates in-process, greedy, for one prompt alone. */
    static int[] reference(int[] prompt, int maxNew) {
        Parallel p = Parallel.shared();
        ModelOptions o = new ModelOptions(64, 256, new CpuMatmulKernels(p), p, ExpertSelection.ALL, null);
        try (MoeModel m = MoeModel.load(dir(), o)) {
            KvCache cache = m.newKvCache(1024, 1);
            return new Generator(m, cache).generate(List.of(new GenerationRequest(prompt, SamplingParams.GREEDY, maxNew, new int[0])),
                    (s, t) -> { }, RoutingObserver.NONE, null).getFirst().outputTokens();
        }
    }

    /** The runtime's raw logits at the last prompt position. */
    static float[] promptLogits(int[] prompt) {
        Parallel p = Parallel.shared();
        ModelOptions o = new ModelOptions(64, 256, new CpuMatmulKernels(p), p, ExpertSelection.ALL, null);
        try (MoeModel m = MoeModel.load(dir(), o)) {
            KvCache cache = m.newKvCache(1024, 1);
            float[][] logits = new float[1][];
            new Generator(m, cache).generate(List.of(new GenerationRequest(prompt, SamplingParams.GREEDY, 1, new int[0])),
                    (s, t) -> { }, RoutingObserver.NONE, logits);
            return logits[0];
        }
    }
}
