package io.moeserve.planner.cli;

import io.moeserve.planner.sim.DaySimulation;
import io.moeserve.planner.sim.SimulationReport;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "simulate", mixinStandardHelpOptions = true,
        description = {"Simulates a day of Zipf-skewed, drifting expert load under the HPA's rules (sync period,",
                "tolerance, stabilisation, rate policies, pod start-up) and compares autoscaling per expert group with",
                "uniform replication: expert-pod-hours needed to keep per-token latency under the target."})
final class SimulateCommand implements Callable<Integer> {
    @Option(names = "--seed", defaultValue = "20261202", description = "default ${DEFAULT-VALUE}")
    long seed;

    @Option(names = "--layers", defaultValue = "24") int layers;
    @Option(names = "--experts", defaultValue = "64") int experts;
    @Option(names = "--top-k", defaultValue = "6") int topK;
    @Option(names = "--zipf", defaultValue = "0.9", description = "Zipf exponent over experts; default ${DEFAULT-VALUE}") double zipf;
    @Option(names = "--drift-sigma", defaultValue = "1.0",
            description = "spread of the drifting popularity factor exp(sigma z); default ${DEFAULT-VALUE}") double sigma;
    @Option(names = "--drift-hours", defaultValue = "12", description = "correlation time of the drift; default ${DEFAULT-VALUE}") double drift;
    @Option(names = "--groups", defaultValue = "8", description = "groups of the contiguous layout; default ${DEFAULT-VALUE}") int groups;
    @Option(names = "--planned-groups", defaultValue = "9") int plannedGroups;
    @Option(names = "--planned-slots", defaultValue = "8",
            description = "experts per layer per pod in the planned layout (same pod size as contiguous)") int plannedSlots;
    @Option(names = "--peak-tokens-per-second", defaultValue = "5000") double peak;
    @Option(names = "--trough", defaultValue = "0.15", description = "night trough as a fraction of the peak") double trough;
    @Option(names = "--pod-pairs-per-second", defaultValue = "20000", description = "what one pod computes when always busy") double podRate;
    @Option(names = "--startup-seconds", defaultValue = "120", description = "pod start until it serves (weights load)") int startup;
    @Option(names = "--latency-factor", defaultValue = "5",
            description = "latency target as a multiple of the unloaded per-token expert time") double latency;
    @Option(names = "--late-budget", defaultValue = "0.001", description = "share of tokens allowed over the target") double lateBudget;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "writes results.md, results.json, simulation.svg")
    Path out;

    @Override
    public Integer call() throws Exception {
        DaySimulation.Scenario d = DaySimulation.Scenario.defaults();
        DaySimulation.Scenario c = new DaySimulation.Scenario(layers, experts, topK, zipf, sigma, drift, groups, plannedGroups, plannedSlots,
                peak, trough, podRate, startup, latency, lateBudget, d.syncSeconds(), d.rateWindowSeconds(), d.tolerance(),
                d.maxReplicas(), d.targets(), seed);
        SimulationReport report = SimulationReport.run(c);
        Files.createDirectories(out);
        Files.writeString(out.resolve("results.md"), report.markdown());
        Files.writeString(out.resolve("results.json"), report.json());
        Files.writeString(out.resolve("simulation.svg"), report.svg());
        System.out.print(report.markdown());
        System.out.println("wrote " + out.resolve("results.md") + ", results.json, simulation.svg");
        return 0;
    }
}
