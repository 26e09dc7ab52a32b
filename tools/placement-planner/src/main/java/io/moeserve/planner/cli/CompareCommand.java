package io.moeserve.planner.cli;

import io.moeserve.planner.sim.ReplanBenchmark;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "compare", mixinStandardHelpOptions = true,
        description = {"Replans hourly for a day of drifting Zipf load and compares EPLB from scratch, EPLB with its",
                "groups matched to the previous plan, and the migration-aware planner: balance and moves."})
final class CompareCommand implements Callable<Integer> {
    @Option(names = "--seed", defaultValue = "20261202") long seed;
    @Option(names = "--layers", defaultValue = "24") int layers;
    @Option(names = "--experts", defaultValue = "64") int experts;
    @Option(names = "--top-k", defaultValue = "6") int topK;
    @Option(names = "--zipf", defaultValue = "0.9") double zipf;
    @Option(names = "--drift-sigma", defaultValue = "1.0") double sigma;
    @Option(names = "--drift-hours", defaultValue = "12") double drift;
    @Option(names = "--groups", defaultValue = "9") int groups;
    @Option(names = "--slots-per-group", defaultValue = "8") int slots;
    @Option(names = "--replans", defaultValue = "24") int replans;
    @Option(names = "--interval-hours", defaultValue = "1") double interval;
    @Option(names = "--slack", defaultValue = "0.02") double slack;
    @Option(names = "--out", paramLabel = "FILE", description = "also write the table here (markdown)") Path out;

    @Override
    public Integer call() throws Exception {
        ReplanBenchmark.Scenario c = new ReplanBenchmark.Scenario(layers, experts, topK, zipf, sigma, drift, groups, slots, replans, interval,
                slack, seed);
        long t0 = System.nanoTime();
        ReplanBenchmark.Row[] rows = ReplanBenchmark.run(c);
        double secs = (System.nanoTime() - t0) / 1e9;
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT,
                "%d MoE layers x %d experts (top-%d, Zipf %.2f, drift sigma %.2f over %.1f h), %d groups x %d slots, "
                        + "%d replans every %.1f h, seed %d%n%n",
                layers, experts, topK, zipf, sigma, drift, groups, slots, replans, interval, seed));
        sb.append("| planner | max/mean group load (mean, worst) | max load vs EPLB (mean, worst) | moves per replan "
                + "| share of slots moved | groups changed per replan |\n");
        sb.append("| --- | --- | --- | --- | --- | --- |\n");
        for (ReplanBenchmark.Row r : rows) {
            sb.append(String.format(Locale.ROOT, "| %s | %.4f, %.4f | %.4f, %.4f | %.1f | %.1f %% | %.1f |%n", r.variant(), r.meanImbalance(),
                    r.worstImbalance(), r.meanMaxLoadVsEplb(), r.worstMaxLoadVsEplb(), r.meanMoves(), 100 * r.meanMovesFraction(),
                            r.meanGroupsChanged()));
        }
        sb.append(String.format(Locale.ROOT, "%n(%.1f s)%n", secs));
        System.out.print(sb);
        if (out != null) Files.writeString(out, sb.toString());
        return 0;
    }
}
