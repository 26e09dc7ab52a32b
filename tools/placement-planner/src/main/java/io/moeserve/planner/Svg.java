package io.moeserve.planner;

import java.util.Locale;

/** The few SVG pieces the pictures need, written by hand so the output is small and has no dependencies. */
public final class Svg {
    private final StringBuilder sb = new StringBuilder();
    private final int width, height;

    public Svg(int width, int height) {
        this.width = width;
        this.height = height;
        sb.append(String.format(Locale.ROOT,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                        + "font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"12\">\n", width, height, width, height));
        sb.append(String.format(Locale.ROOT, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", width, height));
    }

    public Svg rect(double x, double y, double w, double h, String fill, String extra) {
        sb.append(String.format(Locale.ROOT, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"%s/>\n",
                x, y, w, h, fill, extra == null ? "" : " " + extra));
        return this;
    }

    public Svg text(double x, double y, String s, String anchor, int size, String extra) {
        sb.append(String.format(Locale.ROOT, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"%s\" font-size=\"%d\"%s>%s</text>\n",
                x, y, anchor, size, extra == null ? "" : " " + extra, escape(s)));
        return this;
    }

    public Svg line(double x1, double y1, double x2, double y2, String stroke, double width) {
        sb.append(String.format(Locale.ROOT, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" stroke-width=\"%.2f\"/>\n",
                x1, y1, x2, y2, stroke, width));
        return this;
    }

    public Svg polyline(double[] xs, double[] ys, String stroke, double width, String extra) {
        StringBuilder p = new StringBuilder();
        for (int i = 0; i < xs.length; i++) p.append(String.format(Locale.ROOT, "%.1f,%.1f ", xs[i], ys[i]));
        sb.append(String.format(Locale.ROOT, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"%.2f\"%s/>\n",
                p.toString().trim(), stroke, width, extra == null ? "" : " " + extra));
        return this;
    }

    public String done() {
        return sb + "</svg>\n";
    }

    static String escape(String s) {
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;");
    }

    private static final int[][] VIRIDIS = {{68, 1, 84}, {72, 40, 120}, {62, 74, 137}, {49, 104, 142}, {38, 130, 142},
            {31, 158, 137}, {53, 183, 121}, {109, 205, 89}, {180, 222, 44}, {253, 231, 37}};

    /** A perceptually ordered colour for t in [0, 1]. */
    public static String viridis(double t) {
        t = Math.max(0, Math.min(1, t));
        double x = t * (VIRIDIS.length - 1);
        int i = Math.min(VIRIDIS.length - 2, (int) Math.floor(x));
        double f = x - i;
        int r = (int) Math.round(VIRIDIS[i][0] + f * (VIRIDIS[i + 1][0] - VIRIDIS[i][0]));
        int g = (int) Math.round(VIRIDIS[i][1] + f * (VIRIDIS[i + 1][1] - VIRIDIS[i][1]));
        int b = (int) Math.round(VIRIDIS[i][2] + f * (VIRIDIS[i + 1][2] - VIRIDIS[i][2]));
        return String.format(Locale.ROOT, "#%02x%02x%02x", r, g, b);
    }
}
