package io.moeserve.runtime.grammar;

import io.moeserve.runtime.generate.Sampler;
import io.moeserve.runtime.generate.TokenConstraint;
import java.io.IOException;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * What structured output adds to a decode step: for each of {@code batch} sequences, its logits row masked by its
 * constraint and the constraint moved past the token chosen (argmax of varying random logits, so the sequences walk
 * through different values and states). {@code unconstrained} does the same row copy and argmax without the
 * constraint; the difference is the overhead. {@code steady} keeps one grammar, as a router keeps a schema's;
 * {@code cold} starts from a fresh grammar every {@code coldTokens} tokens, so that most states are new.
 *
 * <p>Run: {@code scripts/jmh.sh GrammarMaskBenchmark -p tokenizer=PATH/tokenizer.json}. On a machine shared with
 * other work, {@link #main} measures the same steps in the thread's CPU time instead of wall time (arguments:
 * tokenizer.json, vocabulary size, steps), which other processes disturb far less.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class GrammarMaskBenchmark {
    static final String SCHEMA = """
            {"type": "object", "properties": {
              "name": {"type": "string", "maxLength": 40},
              "age": {"type": "integer"},
              "email": {"type": "string"},
              "scores": {"type": "array", "items": {"type": "number"}, "maxItems": 8},
              "role": {"enum": ["admin", "user", "guest"]},
              "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
                          "required": ["city", "zip"], "additionalProperties": false},
              "active": {"type": "boolean"}
            }, "required": ["name", "age", "email", "scores", "role", "address", "active"], "additionalProperties": false}""";

    @Param("models/bench/tokenizer.json")
    public String tokenizer;

    @Param({"1", "16"})
    public int batch;

    @Param("32000")
    public int vocab;

    private CompiledSchema schema;
    private TokenVocabulary vocabulary;
    private TokenGrammar grammar;
    private TokenConstraint[] constraints;
    private float[] noise;
    private float[] logits;
    private int shift;
    private int tokens;
    private final int[] stop = {2};

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        vocabulary = VocabularyFile.read(Path.of(tokenizer), vocab);
        schema = JsonSchemaCompiler.compile(SCHEMA);
        grammar = schema.forVocabulary(vocabulary);
        constraints = new TokenConstraint[batch];
        for (int i = 0; i < batch; i++) constraints[i] = grammar.newConstraint(stop);
        noise = new float[vocab * 8];
        SplittableRandom r = new SplittableRandom(7);
        for (int i = 0; i < noise.length; i++) noise[i] = (float) r.nextGaussian();
        logits = new float[vocab];
    }

    private int row() {
        shift = (shift + 7919) % (noise.length - vocab);
        System.arraycopy(noise, shift, logits, 0, vocab);
        return shift;
    }

    @Benchmark
    public int unconstrained() {
        int sum = 0;
        for (int i = 0; i < batch; i++) {
            row();
            sum += Sampler.argmax(logits, 0, vocab);
        }
        return sum;
    }

    @Benchmark
    public int steady() {
        int sum = 0;
        for (int i = 0; i < batch; i++) sum += step(i);
        return sum;
    }

    @Param("256")
    public int coldTokens;

    @Benchmark
    public int cold() {
        if (tokens >= coldTokens) {
            tokens = 0;
            grammar = schema.forVocabulary(vocabulary);
            for (int i = 0; i < batch; i++) constraints[i] = grammar.newConstraint(stop);
        }
        tokens++;
        int sum = 0;
        for (int i = 0; i < batch; i++) sum += step(i);
        return sum;
    }

    /** Mean thread CPU time per step, in µs, of {@code steps} calls after as many to warm up. */
    private static double cpuMicros(Runnable step, int steps) {
        java.lang.management.ThreadMXBean mx = java.lang.management.ManagementFactory.getThreadMXBean();
        for (int i = 0; i < steps; i++) step.run();
        long t0 = mx.getCurrentThreadCpuTime();
        for (int i = 0; i < steps; i++) step.run();
        return (mx.getCurrentThreadCpuTime() - t0) / 1e3 / steps;
    }

    public static void main(String[] args) throws IOException {
        int steps = args.length > 2 ? Integer.parseInt(args[2]) : 20_000;
        for (int batch : new int[] {1, 16}) {
            GrammarMaskBenchmark b = new GrammarMaskBenchmark();
            b.tokenizer = args[0];
            b.vocab = Integer.parseInt(args[1]);
            b.batch = batch;
            b.coldTokens = 256;
            b.setUp();
            double free = cpuMicros(b::unconstrained, steps / batch);
            double steady = cpuMicros(b::steady, steps / batch);
            double cold = cpuMicros(b::cold, steps / batch);
            System.out.printf("batch %2d: unconstrained %.1f µs/step, steady %.1f (+%.1f µs per sequence), cold %.1f (+%.1f µs per "
                    + "sequence)%n", batch, free, steady, (steady - free) / batch, cold, (cold - free) / batch);
        }
    }

    private int step(int i) {
        TokenConstraint c = constraints[i];
        row();
        c.mask(logits, 0, vocab);
        int token = Sampler.argmax(logits, 0, vocab);
        c.accept(token);
        if (token == stop[0] || c.complete()) constraints[i] = grammar.newConstraint(stop);
        return token;
    }
}
