package io.moeserve.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** The evaluation's arithmetic against values worked out by hand. */
class EvalMetricsTest {
    private static final float LN2 = (float) Math.log(2);
    private static final float LN3 = (float) Math.log(3);

    @Test
    void perplexityIsExpOfTheMeanNegativeLogLikelihood() {
        // Logits ln 1, ln 2, ln 3: probabilities 1/6, 2/6, 3/6.
        float[] row = {0, LN2, LN3};
        EvalMetrics m = new EvalMetrics();
        m.add(row, 0, 3, 2); // -ln(1/2)
        m.add(row, 0, 3, 0); // -ln(1/6)
        assertEquals(2, m.tokens());
        assertEquals((Math.log(2) + Math.log(6)) / 2, m.meanNll(), 1e-6);
        assertEquals(Math.sqrt(12), m.perplexity(), 1e-5); // exp of the mean = the geometric mean of 2 and 6
    }

    @Test
    void klDivergenceAndTopOneAgreementAgainstABaseline() {
        float[] baseline = {0, LN2, LN3}; // p = 1/6, 1/3, 1/2
        float[] uniform = {5, 5, 5, /* second row, at offset 3: */ 0, 0, 1};
        EvalMetrics m = new EvalMetrics();
        m.add(uniform, 0, baseline, 0, 3, 1);
        // KL(p || 1/3) = 1/6 ln(1/2) + 1/3 ln 1 + 1/2 ln(3/2); argmax 2 against 0 (a tie goes to the lowest id).
        double kl = Math.log(0.5) / 6 + Math.log(1.5) / 2;
        assertEquals(kl, m.meanKl(), 1e-6);
        assertEquals(0, m.top1Agreement());
        assertEquals(Math.log(3), m.meanNll(), 1e-6);

        m.add(uniform, 3, baseline, 0, 3, 2); // q ∝ 1, 1, e: the same top token as p
        double z = 2 + Math.E;
        double kl2 = Math.log((1 / 6.0) * z) / 6 + Math.log((1 / 3.0) * z) / 3 + Math.log(0.5 * z / Math.E) / 2;
        assertEquals((kl + kl2) / 2, m.meanKl(), 1e-6);
        assertEquals(0.5, m.top1Agreement());
    }

    @Test
    void identicalRowsGiveZeroDivergenceAndFullAgreement() {
        float[] row = {1.5f, -2, 0.25f, 7, 7};
        EvalMetrics m = new EvalMetrics();
        m.add(row, 0, row, 0, 5, 3);
        assertEquals(0, m.meanKl());
        assertEquals(1, m.top1Agreement());
    }

    @Test
    void largeLogitsDoNotOverflow() {
        float[] shifted = {1000, 1000 + LN2, 1000 + LN3};
        EvalMetrics m = new EvalMetrics();
        m.add(shifted, 0, new float[] {0, LN2, LN3}, 0, 3, 2);
        assertEquals(Math.log(2), m.meanNll(), 1e-4);
        assertEquals(0, m.meanKl(), 1e-6);
    }

    @Test
    void unigramPerplexityUsesTheFittedTextsFrequencies() {
        // Frequencies 1/4, 2/4, 1/4; predicted tokens 1, 1, 2: mean NLL (ln 2 + ln 2 + ln 4) / 3 = 4/3 ln 2.
        int[] ids = {0, 1, 1, 2};
        assertEquals(Math.pow(2, 4 / 3.0), EvalMetrics.unigramPerplexity(ids, ids, 3), 1e-9);
        // A prefix predicted with the whole text's frequencies: token 1 alone, -ln(1/2).
        assertEquals(2, EvalMetrics.unigramPerplexity(ids, new int[] {0, 1}, 3), 1e-9);
    }
}
