package io.moeserve.runtime.generate;

import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.ModelOptions;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.RoutingObserver;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;

/**
 * Multi-turn chat with prefix caching off and on (issue 14 item 4): C conversations of T turns each run at once
 * through one {@link GenerationLoop}, as the router's engine runs them (256-token steps, decode first, then prompt
 * chunks). Each conversation starts with a system prompt; turn t's prompt is turn t−1's prompt, its reply and a new
 * user message, and it is submitted the moment turn t−1's reply ends. Measured per turn: the time to first token
 * (submission to the first sampled token) and the prompt tokens computed (prompt tokens less those taken from the
 * cache). Run with {@code scripts/bench-prefix-cache.sh}; prints Markdown tables for BENCHMARKS.md.
 *
 * <p>The two settings alternate, round after round, on one loaded model (a fresh KV cache each run), and every
 * ratio is taken within a round, since this machine's speed drifts between minutes. Token ids are drawn from a seeded
 * generator and replies are sampled with a fixed seed and no stop token, so both settings run the same tokens: the
 * check at the end of each round fails the run if any reply differs.
 */
public final class PrefixCachingBenchmark {
    private PrefixCachingBenchmark() {}

    /** One turn's numbers. */
    private record Turn(int conversation, int turn, int promptTokens, int computedTokens, long ttftNanos, int[] reply) {}

    public static void main(String[] args) {
        Path modelDir = Path.of(args.length > 0 ? args[0] : "models/default");
        int conversations = args.length > 1 ? Integer.parseInt(args[1]) : 8;
        int turns = args.length > 2 ? Integer.parseInt(args[2]) : 6;
        int rounds = args.length > 3 ? Integer.parseInt(args[3]) : 4;
        int system = args.length > 4 ? Integer.parseInt(args[4]) : 96;
        int user = args.length > 5 ? Integer.parseInt(args[5]) : 48;
        int reply = args.length > 6 ? Integer.parseInt(args[6]) : 32;
        Parallel parallel = Parallel.shared();
        ModelOptions options = new ModelOptions(256, 4096, new CpuMatmulKernels(parallel), parallel, ExpertSelection.ALL, null);
        try (MoeModel model = MoeModel.load(modelDir, options)) {
            System.out.printf(Locale.ROOT, "model %s (%s, %d layers, hidden %d), %d conversations x %d turns, system prompt %d tokens,"
                            + " user messages %d, replies %d, %d rounds, %d cores, load %s%n", modelDir, model.config().architecture().hfClassName(),
                    model.config().numLayers(), model.config().hiddenSize(), conversations, turns, system, user, reply, rounds,
                    Runtime.getRuntime().availableProcessors(), loadAverage());
            run(model, conversations, 2, system, user, reply, false);  // warm-up: the JIT, the page cache
            run(model, conversations, 2, system, user, reply, true);
            List<List<Turn>> off = new ArrayList<>();
            List<List<Turn>> on = new ArrayList<>();
            for (int r = 0; r < rounds; r++) {
                // Alternate which setting goes first (an even number of rounds balances it): the first run of a pair
                // was measured slower at turn 1 on the loaded VM, whichever setting it was.
                boolean onFirst = r % 2 == 1;
                List<Turn> a = run(model, conversations, turns, system, user, reply, onFirst);
                List<Turn> b = run(model, conversations, turns, system, user, reply, !onFirst);
                off.add(onFirst ? b : a);
                on.add(onFirst ? a : b);
                for (int i = 0; i < a.size(); i++) {
                    if (!Arrays.equals(a.get(i).reply(), b.get(i).reply())) {
                        throw new IllegalStateException("conversation " + a.get(i).conversation() + " turn " + a.get(i).turn()
                                + ": the replies with prefix caching off and on differ");
                    }
                }
                System.out.printf(Locale.ROOT, "round %d done, load %s%n", r + 1, loadAverage());
            }
            print(off, on, turns, rounds);
        }
    }

    /** Runs every conversation to its last turn on a fresh cache; replies are compared with the other setting's. */
    private static List<Turn> run(MoeModel model, int conversations, int turns, int system, int user, int reply, boolean caching) {
        System.gc();  // the previous run's garbage is not this run's pause
        int maxContext = system + turns * (user + reply) + 16;
        KvCache cache = model.newKvCache(conversations * maxContext * 2, conversations);
        if (caching) cache.enablePrefixCaching();
        GenerationLoop loop = new GenerationLoop(model, cache, conversations, RoutingObserver.NONE);
        int vocab = model.config().vocabSize();
        int[][] history = new int[conversations][];
        int[] turnOf = new int[conversations];
        List<Turn> out = new ArrayList<>();
        Chat[] running = new Chat[conversations];
        for (int c = 0; c < conversations; c++) {
            Random tokens = new Random(1000 + c);
            history[c] = draw(tokens, system + user, vocab);
            running[c] = new Chat(c, history[c], reply, vocab);
            if (!loop.admit(running[c])) throw new IllegalStateException("no slot");
        }
        while (!loop.running().isEmpty()) {
            loop.step();
            for (int c = 0; c < conversations; c++) {
                Chat s = running[c];
                if (s == null || s.phase() != Sequence.Phase.DONE) continue;
                int computed = s.prompt().length - s.cachedPromptTokens();
                out.add(new Turn(c, turnOf[c], s.prompt().length, computed, s.firstTokenNanos - s.submittedNanos, s.generated()));
                running[c] = null;
                if (++turnOf[c] == turns) continue;
                Random tokens = new Random(1000 + 31L * turnOf[c] + c);
                int[] next = concat(s.prompt(), s.generated(), draw(tokens, user, vocab));
                running[c] = new Chat(c, next, reply, vocab);
                if (!loop.admit(running[c])) throw new IllegalStateException("no slot");
            }
        }
        out.sort((x, y) -> x.conversation() != y.conversation() ? x.conversation() - y.conversation() : x.turn() - y.turn());
        return out;
    }

    /** One turn of a conversation: records when it was submitted, when its first token came, and its hits. */
    private static final class Chat extends Sequence {
        final long submittedNanos = System.nanoTime();
        long firstTokenNanos;

        Chat(int conversation, int[] prompt, int reply, int vocab) {
            super(prompt, reply, new Sampler(SamplingParams.sampled(0.8f, 40, 0.95f, 0f, 77L + conversation), vocab, prompt), new int[0]);
        }

        @Override
        protected void onToken(int token, FinishReason finish) {
            if (generatedCount() == 1) firstTokenNanos = System.nanoTime();
        }
    }

    private static int[] draw(Random random, int n, int vocab) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) t[i] = 3 + random.nextInt(vocab - 3);
        return t;
    }

    private static int[] concat(int[]... parts) {
        int n = 0;
        for (int[] p : parts) n += p.length;
        int[] out = new int[n];
        int at = 0;
        for (int[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }

    private static void print(List<List<Turn>> off, List<List<Turn>> on, int turns, int rounds) {
        System.out.println();
        System.out.println("| turn | prompt tokens (mean) | computed, off | computed, on | TTFT off (ms, median of rounds) | TTFT on (ms)"
                + " | on / off |");
        System.out.println("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (int t = 0; t < turns; t++) {
            final int turn = t;
            double prompt = off.getFirst().stream().filter(x -> x.turn() == turn).mapToInt(Turn::promptTokens).average().orElse(0);
            double cOff = off.getFirst().stream().filter(x -> x.turn() == turn).mapToInt(Turn::computedTokens).sum();
            double cOn = on.getFirst().stream().filter(x -> x.turn() == turn).mapToInt(Turn::computedTokens).sum();
            double[] ratios = new double[rounds];
            double[] tOff = new double[rounds];
            double[] tOn = new double[rounds];
            for (int r = 0; r < rounds; r++) {
                tOff[r] = meanTtft(off.get(r), turn);
                tOn[r] = meanTtft(on.get(r), turn);
                ratios[r] = tOn[r] / tOff[r];
            }
            System.out.printf(Locale.ROOT, "| %d | %.0f | %.0f | %.0f | %.1f | %.1f | %.2f (%s) |%n", t + 1, prompt, cOff, cOn,
                    median(tOff), median(tOn), median(ratios), rounded(ratios, 100));
        }
        double[] ratios = new double[rounds];
        long totalOff = 0;
        long totalOn = 0;
        for (int r = 0; r < rounds; r++) {
            ratios[r] = off.get(r).stream().mapToLong(Turn::ttftNanos).sum() == 0 ? 0
                    : (double) on.get(r).stream().mapToLong(Turn::ttftNanos).sum() / off.get(r).stream().mapToLong(Turn::ttftNanos).sum();
        }
        for (Turn x : off.getFirst()) totalOff += x.computedTokens();
        for (Turn x : on.getFirst()) totalOn += x.computedTokens();
        System.out.printf(Locale.ROOT, "%nall turns: prompt tokens computed %d off, %d on (%.1f%%); mean TTFT on / off per round %s%n",
                totalOff, totalOn, 100.0 * totalOn / totalOff, rounded(ratios, 1000));
    }

    private static String rounded(double[] xs, int scale) {
        return Arrays.toString(Arrays.stream(xs).map(x -> Math.round(x * scale) / (double) scale).toArray());
    }

    private static double meanTtft(List<Turn> turns, int turn) {
        return turns.stream().filter(x -> x.turn() == turn).mapToLong(Turn::ttftNanos).average().orElse(0) / 1e6;
    }

    private static double median(double[] xs) {
        double[] s = xs.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    private static String loadAverage() {
        try {
            return java.nio.file.Files.readString(Path.of("/proc/loadavg")).split(" ")[0];
        } catch (java.io.IOException e) {
            return "?";
        }
    }
}
