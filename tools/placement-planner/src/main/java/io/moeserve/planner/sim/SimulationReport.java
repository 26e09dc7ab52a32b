package io.moeserve.planner.sim;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/** The day simulation's results: the best run of every strategy, as a markdown table, JSON and an SVG picture. */
public final class SimulationReport {
    private final DaySimulation.Scenario scenario;
    private final DaySimulation.Day day;
    private final List<DaySimulation.Run> best;
    private final List<DaySimulation.Run> atCommonTarget;
    private final double commonTarget;

    private SimulationReport(DaySimulation.Scenario scenario, DaySimulation.Day day, List<DaySimulation.Run> best,
                             List<DaySimulation.Run> atCommonTarget, double commonTarget) {
        this.scenario = scenario;
        this.day = day;
        this.best = best;
        this.atCommonTarget = atCommonTarget;
        this.commonTarget = commonTarget;
    }

    public static SimulationReport run(DaySimulation.Scenario c) {
        DaySimulation sim = new DaySimulation(c);
        DaySimulation.Day day = sim.day();
        List<DaySimulation.Run> best = new ArrayList<>(), common = new ArrayList<>();
        double t = 0.6;
        for (DaySimulation.Strategy s : DaySimulation.Strategy.values()) {
            best.add(sim.best(day, s));
            common.add(sim.run(day, s, t));
        }
        return new SimulationReport(c, day, best, common, t);
    }

    public List<DaySimulation.Run> best() {
        return best;
    }

    public DaySimulation.Run best(DaySimulation.Strategy s) {
        return best.get(s.ordinal());
    }

    public String markdown() {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "Day of load: %d MoE layers x %d experts, top-%d, Zipf %.2f, popularity drift %.1f h; "
                        + "peak %.0f tokens/s, trough %.0f %%; pod %.0f pairs/s; start-up %d s; latency target %.1fx unloaded "
                        + "(every group <= %.0f %% busy); late-token budget %.2f %%; HPA sync %d s, tolerance %.2f, "
                        + "scale-down window 300 s, rate window %d s; seed %d%n%n",
                scenario.layers(), scenario.experts(), scenario.topK(), scenario.zipf(), scenario.driftHours(), scenario.peakTokensPerSecond(),
                100 * scenario.troughFraction(), scenario.podPairsPerSecond(), scenario.startupSeconds(), scenario.latencyFactor(),
                100 * scenario.maxUtilisation(), 100 * scenario.lateBudget(), scenario.syncSeconds(), scenario.tolerance(),
                scenario.rateWindowSeconds(), scenario.seed()));
        sb.append("| strategy | groups | best target | expert-pod-hours | vs uniform HPA | peak pods | late tokens |\n");
        sb.append("| --- | --- | --- | --- | --- | --- | --- |\n");
        DaySimulation.Run uniform = best(DaySimulation.Strategy.UNIFORM_HPA);
        for (DaySimulation.Run r : best) {
            if (r == null) continue;
            int groups = r.strategy().name().startsWith("PLANNED") ? scenario.plannedGroups() : scenario.groups();
            sb.append(String.format(Locale.ROOT, "| %s | %d | %.2f | %.1f | %s | %d | %.3f %% |%n", r.strategy().label, groups, r.target(),
                    r.podHours(),
                    uniform == null ? "-" : String.format(Locale.ROOT, "%.2f", r.podHours() / uniform.podHours()), r.peakPods(),
                            100 * r.lateFraction()));
        }
        for (int i = 0; i < best.size(); i++) {
            if (best.get(i) == null) {
                sb.append("| ").append(DaySimulation.Strategy.values()[i].label)
                        .append(" | no target on the grid meets the budget | | | | | |\n");
            }
        }
        sb.append(String.format(Locale.ROOT, "%nAll at target %.2f:%n%n| strategy | expert-pod-hours | late tokens |%n| --- | --- | --- |%n",
                commonTarget));
        for (DaySimulation.Run r : atCommonTarget) {
            sb.append(String.format(Locale.ROOT, "| %s | %.1f | %.3f %% |%n", r.strategy().label, r.podHours(), 100 * r.lateFraction()));
        }
        return sb.toString();
    }

    public String json() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("schema", "moe-serve.autoscaling-simulation.v1");
        m.put("seed", scenario.seed());
        List<Map<String, Object>> rows = new ArrayList<>();
        for (DaySimulation.Run r : best) {
            if (r == null) continue;
            rows.add(new LinkedHashMap<>(Map.of("strategy", r.strategy().name(), "target", r.target(), "pod_hours", r.podHours(),
                    "late_fraction", r.lateFraction(), "peak_pods", r.peakPods())));
        }
        m.put("best", rows);
        try {
            return new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(m) + "\n";
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Total expert pods over the day for each autoscaled strategy, with the traffic behind them. */
    public String svg() {
        int w = 900, h = 430;
        double left = 60, right = 170, top = 50, bottom = 50, pw = w - left - right, ph = h - top - bottom;
        io.moeserve.planner.Svg svg = new io.moeserve.planner.Svg(w, h);
        svg.text(left, 24, "Expert pods over a simulated day: per-group HPA vs uniform replication", "start", 15, "font-weight=\"bold\"");
        int maxPods = 1;
        for (DaySimulation.Run r : best) if (r != null) maxPods = Math.max(maxPods, r.peakPods());
        maxPods = (int) Math.ceil(maxPods * 1.1);
        int steps = day.tokensPerSecond().length;
        double maxTps = 0;
        for (double v : day.tokensPerSecond()) maxTps = Math.max(maxTps, v);
        // axes and grid
        for (int hr = 0; hr <= 24; hr += 3) {
            double x = left + pw * hr / 24.0;
            svg.line(x, top, x, top + ph, "#e5e5e5", 1);
            svg.text(x, top + ph + 16, String.format(Locale.ROOT, "%02d:00", hr), "middle", 10, null);
        }
        int tick = Math.max(1, (int) Math.pow(10, Math.floor(Math.log10(maxPods))) / 2);
        for (int p = 0; p <= maxPods; p += tick) {
            double y = top + ph - ph * p / maxPods;
            svg.line(left, y, left + pw, y, "#e5e5e5", 1);
            svg.text(left - 6, y + 4, Integer.toString(p), "end", 10, null);
        }
        svg.text(left + pw / 2, h - 12, "time of day", "middle", 11, null);
        svg.text(16, top + ph / 2, "expert pods", "middle", 11, String.format(Locale.ROOT, "transform=\"rotate(-90 16 %.1f)\"", top + ph / 2));
        // traffic, scaled to the plot height
        int stride = Math.max(1, steps / 480);
        int n = (steps + stride - 1) / stride;
        double[] xs = new double[n], ys = new double[n];
        for (int k = 0; k < n; k++) {
            int i = k * stride;
            xs[k] = left + pw * i / (double) steps;
            ys[k] = top + ph - ph * 0.95 * day.tokensPerSecond()[i] / maxTps;
        }
        svg.polyline(xs, ys, "#bbbbbb", 1.5, "stroke-dasharray=\"4 3\"");
        String[] colours = {"#1f77b4", "#d62728", "#2ca02c", "#8c564b", "#ff7f0e", "#9467bd"};
        double ly = top + 4;
        for (DaySimulation.Run r : best) {
            if (r == null) continue;
            double[] y = new double[n];
            for (int k = 0; k < n; k++) y[k] = top + ph - ph * r.totalPods()[k * stride] / maxPods;
            String col = colours[r.strategy().ordinal()];
            svg.polyline(xs, y, col, 2, r.strategy().name().startsWith("STATIC") ? "stroke-dasharray=\"2 2\"" : null);
            svg.rect(left + pw + 12, ly - 8, 14, 4, col, null);
            svg.text(left + pw + 30, ly - 3, shortLabel(r), "start", 10, null);
            svg.text(left + pw + 30, ly + 9, String.format(Locale.ROOT, "%.0f pod-h, target %.2f", r.podHours(), r.target()), "start", 9,
                    "fill=\"#555\"");
            ly += 30;
        }
        svg.rect(left + pw + 12, ly - 8, 14, 2, "#bbbbbb", null);
        svg.text(left + pw + 30, ly - 3, "traffic (tokens/s, scaled)", "start", 10, null);
        return svg.done();
    }

    private static String shortLabel(DaySimulation.Run r) {
        return switch (r.strategy()) {
            case PER_GROUP_HPA -> "HPA per group";
            case UNIFORM_HPA -> "uniform, one HPA";
            case PLANNED_PER_GROUP_HPA -> "HPA per group, planned";
            case PLANNED_UNIFORM_HPA -> "uniform, planned, one HPA";
            case STATIC_UNIFORM -> "uniform, static peak";
            case STATIC_PER_GROUP -> "per group, static peak";
        };
    }
}
