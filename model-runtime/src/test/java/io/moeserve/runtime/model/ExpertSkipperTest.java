package io.moeserve.runtime.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** The skipping rule on hand-made routing: which slots go, how the rest are renormalised, which tokens are kept whole. */
class ExpertSkipperTest {
    private static final int K = 3;
    private static final int H = 2;

    @Test
    void dropsSlotsBelowThresholdTimesTopWeightAndKeepsTheTokensMass() {
        ExpertSkipper skipper = new ExpertSkipper(new ExpertSkipping(0.5f, 0f), H, 8, K);
        StepBatch batch = decodeRows(2);
        int[] experts = {4, 1, 6, 2, 0, 5};
        // Token 0: 0.25 < 0.5·0.6 goes, 0.05 goes. Token 1: its top weight is not in slot 0 (DeepSeek-V3 picks by a
        // biased score); 0.2 < 0.5·0.45 goes, 0.35 stays. Weights of an un-normalised family (sum 0.9 and 1.0).
        float[] weights = {0.6f, 0.25f, 0.05f, 0.35f, 0.45f, 0.2f};
        int[] routed = experts.clone();
        skipper.prepare(batch);
        assertTrue(skipper.active());
        int pairs = skipper.apply(batch, 2, K, new float[2 * H], experts, weights, routed);
        assertEquals(3, pairs);
        assertArrayEquals(new int[] {4, -1, -1, 2, 0, -1}, routed);
        assertArrayEquals(new int[] {-1, 1, 6, -1, -1, 5}, Arrays.copyOf(skipper.skipped, 6));
        assertArrayEquals(new int[] {4, 1, 6, 2, 0, 5}, experts, "the gate's choice is left as it was");
        assertEquals(0.9f, weights[0], 1e-6f, "a lone survivor takes the token's whole mass (1 for a normalised gate)");
        assertEquals(0f, weights[1]);
        assertEquals(0f, weights[2]);
        assertEquals(0.35f / 0.8f, weights[3], 1e-6f);
        assertEquals(0.45f / 0.8f, weights[4], 1e-6f);
        assertEquals(0f, weights[5]);
    }

    @Test
    void thresholdZeroChangesNothing() {
        ExpertSkipper skipper = new ExpertSkipper(new ExpertSkipping(0f, 0f), H, 8, K);
        StepBatch batch = decodeRows(2);
        skipper.prepare(batch);
        assertFalse(skipper.active(), "no row skips, so MoeBlock does not call apply");
        float[] weights = {0.9f, 0.05f, 0.05f, 0.5f, 0.3f, 0.2f};
        float[] before = weights.clone();
        int[] routed = {1, 2, 3, 4, 5, 6};
        assertEquals(0, skipper.apply(batch, 2, K, new float[2 * H], routed.clone(), weights, routed));
        assertArrayEquals(before, weights);
        assertArrayEquals(new int[] {1, 2, 3, 4, 5, 6}, routed);
    }

    @Test
    void eachRowTakesItsOwnThresholdOrTheDeploymentsWhereItHasNone() {
        ExpertSkipper skipper = new ExpertSkipper(new ExpertSkipping(0.5f, 0f), H, 8, K);
        StepBatch batch = new StepBatch(8);
        batch.add(1, 0, 0, true, 0f);        // its request turned skipping off
        batch.add(1, 1, 0, true);            // the deployment's 0.5
        batch.add(1, 2, 0, true, 0.25f);     // its own, lower threshold
        int[] experts = {0, 1, 2, 0, 1, 2, 0, 1, 2};
        float[] weights = {0.6f, 0.2f, 0.2f, 0.6f, 0.2f, 0.2f, 0.6f, 0.2f, 0.1f};
        int[] routed = experts.clone();
        skipper.prepare(batch);
        skipper.apply(batch, 3, K, new float[3 * H], experts, weights, routed);
        assertArrayEquals(new int[] {0, 1, 2, 0, -1, -1, 0, 1, -1}, routed);
        assertEquals(0.6f, weights[0]);
        assertEquals(0.2f, weights[1]);
    }

    @Test
    void theMostImportantTokensOfAPromptChunkKeepEveryExpert() {
        // A chunk of 100 prompt tokens with τ_h = 0.02: the 2 of highest ‖x‖₁ / (n − t) keep their experts. Token 10
        // has a huge input, so it outranks every position but the last (weight 1/1); the last keeps its by position.
        int n = 100;
        ExpertSkipper skipper = new ExpertSkipper(new ExpertSkipping(1f, 0.02f), H, n + 1, K);
        StepBatch batch = new StepBatch(n + 1);
        for (int t = 0; t < n; t++) batch.add(7, 0, 20 + t, t == n - 1);
        batch.add(7, 1, 50, true); // another sequence's decode token: rule 1 only
        float[] x = new float[(n + 1) * H];
        Arrays.fill(x, 1f);
        x[10 * H] = 1e4f;
        int[] experts = new int[(n + 1) * K];
        float[] weights = new float[(n + 1) * K];
        for (int t = 0; t <= n; t++) {
            for (int j = 0; j < K; j++) {
                experts[t * K + j] = j;
                weights[t * K + j] = 0.5f - 0.1f * j;
            }
        }
        int[] routed = experts.clone();
        skipper.prepare(batch);
        int pairs = skipper.apply(batch, n + 1, K, x, experts, weights, routed);
        assertEquals((n + 1 - 2) * (K - 1), pairs);
        for (int t = 0; t <= n; t++) {
            boolean whole = t == 10 || t == n - 1;
            assertEquals(whole ? 1 : -1, routed[t * K + 1], "token " + t);
            assertEquals(whole ? 2 : -1, routed[t * K + 2], "token " + t);
        }
    }

    @Test
    void settingsOutsideTheUnitIntervalAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new ExpertSkipping(1.5f, 0f));
        assertThrows(IllegalArgumentException.class, () -> new ExpertSkipping(-0.1f, 0f));
        assertThrows(IllegalArgumentException.class, () -> new ExpertSkipping(Float.NaN, 0f));
        assertThrows(IllegalArgumentException.class, () -> new ExpertSkipping(0.3f, 2f));
    }

    private static StepBatch decodeRows(int n) {
        StepBatch batch = new StepBatch(8);
        for (int i = 0; i < n; i++) batch.add(1, i, 3, true);
        return batch;
    }
}
