package io.moeserve.planner;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * The expert load as a picture a person can read: a layer × expert heatmap (log colour scale, since routed load is
 * heavy-tailed), replicated experts marked with the number of groups hosting them, and beside it each group's load
 * under the plan, so hot spots and the balance the plan reaches are seen at once.
 */
public final class Heatmap {
    private Heatmap() {}

    /**
     * @param load      {@code load[i][e]}, pairs per second, MoE layer index i
     * @param moeLayers the layer id of each row
     * @param plan      the plan (may be null: heatmap only)
     * @param names     group names, in plan order
     */
    public static String svg(double[][] load, int[] moeLayers, Placement plan, List<String> names, String title) {
        int layers = load.length, experts = load[0].length;
        double cw = Math.max(4, Math.min(28, 900.0 / experts));
        double ch = Math.max(4, Math.min(24, 520.0 / layers));
        double left = 70, top = 60, gridW = cw * experts, gridH = ch * layers;
        double barsLeft = left + gridW + 110, barsW = plan == null ? 0 : 260;
        int width = (int) Math.ceil(barsLeft + barsW + (plan == null ? -40 : 40));
        int height = (int) Math.ceil(top + Math.max(gridH, plan == null ? 0 : 14.0 * plan.groups()) + 90);
        Svg svg = new Svg(width, height);
        svg.text(left, 24, title, "start", 15, "font-weight=\"bold\"");
        double total = 0, max = 0, minPos = Double.POSITIVE_INFINITY;
        for (double[] row : load) {
            for (double v : row) {
                total += v;
                max = Math.max(max, v);
                if (v > 0) minPos = Math.min(minPos, v);
            }
        }
        double mean = total / ((double) layers * experts);
        svg.text(left, 42, String.format(Locale.ROOT, "%d MoE layers × %d experts, %.0f (token, expert) pairs/s, hottest expert %.1f× the mean",
                layers, experts, total, mean > 0 ? max / mean : 0), "start", 11, "fill=\"#444\"");
        double lo = Math.log(minPos == Double.POSITIVE_INFINITY ? 1 : minPos), hi = Math.log(Math.max(max, 1e-300));
        int[][] hosts = plan == null ? null : new int[layers][];
        if (plan != null) for (int l = 0; l < layers; l++) hosts[l] = Placement.hostCount(plan.experts()[l], experts);
        for (int l = 0; l < layers; l++) {
            for (int e = 0; e < experts; e++) {
                double v = load[l][e];
                double t = v <= 0 ? 0 : (hi > lo ? (Math.log(v) - lo) / (hi - lo) : 1);
                String fill = v <= 0 ? "#f0f0f0" : Svg.viridis(t);
                svg.rect(left + e * cw, top + l * ch, cw, ch, fill, null);
                if (hosts != null && hosts[l][e] > 1) {
                    if (cw >= 12 && ch >= 10) {
                        svg.text(left + e * cw + cw / 2, top + l * ch + ch / 2 + 4, "×" + hosts[l][e], "middle", 9,
                                "fill=\"" + (t > 0.6 ? "black" : "white") + "\"");
                    } else {
                        svg.rect(left + e * cw + cw * 0.3, top + l * ch + ch * 0.3, cw * 0.4, ch * 0.4, "white", "opacity=\"0.85\"");
                    }
                }
            }
        }
        // axes
        int layerStep = Math.max(1, (int) Math.ceil(12.0 / ch));
        for (int l = 0; l < layers; l += layerStep) svg.text(left - 6, top + l * ch + ch / 2 + 4, "L" + moeLayers[l], "end", 10, null);
        int expertStep = Math.max(1, (int) Math.ceil(24.0 / cw));
        for (int e = 0; e < experts; e += expertStep) svg.text(left + e * cw + cw / 2, top + gridH + 14, Integer.toString(e), "middle", 10, null);
        svg.text(left + gridW / 2, top + gridH + 32, "expert id", "middle", 11, null);
        svg.text(18, top + gridH / 2, "MoE layer", "middle", 11, String.format(Locale.ROOT, "transform=\"rotate(-90 18 %.1f)\"", top + gridH / 2));
        // legend
        double lx = left + gridW + 20, lh = Math.min(200, gridH);
        for (int i = 0; i < 50; i++) svg.rect(lx, top + lh - (i + 1) * lh / 50, 14, lh / 50 + 0.5, Svg.viridis(i / 49.0), null);
        svg.text(lx + 18, top + 8, String.format(Locale.ROOT, "%.3g", max), "start", 10, null);
        svg.text(lx + 18, top + lh, String.format(Locale.ROOT, "%.3g", minPos == Double.POSITIVE_INFINITY ? 0 : minPos), "start", 10, null);
        svg.text(lx, top + lh + 16, "pairs/s (log)", "start", 10, null);
        if (hosts != null) svg.text(lx, top + lh + 30, "×n: in n groups", "start", 10, null);
        if (plan != null) groupBars(svg, load, plan, names, barsLeft, top, barsW);
        return svg.done();
    }

    private static void groupBars(Svg svg, double[][] load, Placement plan, List<String> names, double x, double top, double w) {
        double[][] per = plan.loads(load);
        int groups = plan.groups();
        double[] sum = new double[groups];
        for (double[] layer : per) for (int g = 0; g < groups; g++) sum[g] += layer[g];
        double mean = Arrays.stream(sum).average().orElse(0), max = Arrays.stream(sum).max().orElse(0);
        double bh = Math.max(4, Math.min(14, 520.0 / groups));
        svg.text(x, top - 8, String.format(Locale.ROOT, "group load (all layers), max/mean %.3f", mean > 0 ? max / mean : 0), "start", 11, null);
        double scale = max > 0 ? (w - 60) / max : 0;
        for (int g = 0; g < groups; g++) {
            double y = top + g * bh;
            svg.rect(x + 50, y + 1, sum[g] * scale, bh - 2, "#3b6ea8", null);
            if (bh >= 9) svg.text(x + 46, y + bh - 3, names.get(g), "end", Math.min(10, (int) bh), null);
        }
        svg.line(x + 50 + mean * scale, top, x + 50 + mean * scale, top + groups * bh, "#c0392b", 1.2);
        svg.text(x + 50 + mean * scale, top + groups * bh + 14, "mean", "middle", 10, "fill=\"#c0392b\"");
    }
}
