package io.moeserve.runtime.merge;

import java.util.Arrays;

/**
 * The linear assignment problem, solved exactly: the permutation p minimising Σ_r cost[r][p[r]] over an n × n cost
 * matrix. Used to align one expert's intermediate neurons to another's before they are averaged.
 *
 * <p>The Hungarian method in its shortest-augmenting-path form (Kuhn–Munkres with potentials): rows are added one
 * at a time, each by a Dijkstra-like search over reduced costs that keeps the potentials feasible, so the whole is
 * O(n³) — about 17 M steps for an expert of 256 neurons.
 */
final class Assignment {
    private Assignment() {}

    /** p[r] = the column assigned to row r, minimising the total cost. */
    static int[] minimumCost(double[][] cost) {
        int n = cost.length;
        // 1-based: index 0 is the virtual column the search starts from.
        double[] u = new double[n + 1];
        double[] v = new double[n + 1];
        int[] rowOfColumn = new int[n + 1];
        int[] way = new int[n + 1];
        double[] minTo = new double[n + 1];
        boolean[] used = new boolean[n + 1];
        for (int r = 1; r <= n; r++) {
            rowOfColumn[0] = r;
            int col = 0;
            Arrays.fill(minTo, Double.POSITIVE_INFINITY);
            Arrays.fill(used, false);
            do {
                used[col] = true;
                int row = rowOfColumn[col];
                double delta = Double.POSITIVE_INFINITY;
                int next = -1;
                for (int c = 1; c <= n; c++) {
                    if (used[c]) continue;
                    double reduced = cost[row - 1][c - 1] - u[row] - v[c];
                    if (reduced < minTo[c]) {
                        minTo[c] = reduced;
                        way[c] = col;
                    }
                    if (minTo[c] < delta) {
                        delta = minTo[c];
                        next = c;
                    }
                }
                for (int c = 0; c <= n; c++) {
                    if (used[c]) {
                        u[rowOfColumn[c]] += delta;
                        v[c] -= delta;
                    } else {
                        minTo[c] -= delta;
                    }
                }
                col = next;
            } while (rowOfColumn[col] != 0);
            // Flip the augmenting path back to the virtual column.
            do {
                int prev = way[col];
                rowOfColumn[col] = rowOfColumn[prev];
                col = prev;
            } while (col != 0);
        }
        int[] p = new int[n];
        for (int c = 1; c <= n; c++) p[rowOfColumn[c] - 1] = c - 1;
        return p;
    }
}
