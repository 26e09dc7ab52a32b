package io.moeserve.planner.sim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The day simulation: reproducible, the HPA's rules as Kubernetes applies them, and the comparison it exists for. */
class DaySimulationTest {
    static DaySimulation.Scenario small() {
        DaySimulation.Scenario d = DaySimulation.Scenario.defaults();
        return new DaySimulation.Scenario(8, 32, 4, 0.9, 1.0, 12, 8, 9, 4, 2500, 0.15, 20000, 120, 5, 0.001, 15, 60, 0.1, 64,
                new double[]{0.5, 0.6, 0.7}, 7L);
    }

    @Test
    void sameSeedSameDay() {
        DaySimulation sim = new DaySimulation(small());
        DaySimulation.Run a = sim.run(sim.day(), DaySimulation.Strategy.PER_GROUP_HPA, 0.6);
        DaySimulation.Run b = new DaySimulation(small()).run(new DaySimulation(small()).day(), DaySimulation.Strategy.PER_GROUP_HPA, 0.6);
        assertEquals(a.podHours(), b.podHours());
        assertArrayEquals(a.totalPods(), b.totalPods());
    }

    @Test
    void perGroupAutoscalingNeedsFewerPodHoursThanUniformReplication() {
        SimulationReport r = SimulationReport.run(small());
        DaySimulation.Run perGroup = r.best(DaySimulation.Strategy.PER_GROUP_HPA);
        DaySimulation.Run uniform = r.best(DaySimulation.Strategy.UNIFORM_HPA);
        DaySimulation.Run staticUniform = r.best(DaySimulation.Strategy.STATIC_UNIFORM);
        assertNotNull(perGroup);
        assertNotNull(uniform);
        assertNotNull(staticUniform);
        assertTrue(perGroup.lateFraction() <= 0.001 && uniform.lateFraction() <= 0.001);
        assertTrue(perGroup.podHours() < uniform.podHours(), perGroup.podHours() + " vs " + uniform.podHours());
        assertTrue(uniform.podHours() < staticUniform.podHours(), "autoscaling beats provisioning for the peak");
        assertTrue(r.svg().startsWith("<svg") && r.markdown().contains("| HPA per group, contiguous layout |"));
    }

    @Test
    void hpaToleranceAndProportionalRule() {
        Hpa h = new Hpa(1, 100, 0.5, 0.1, Hpa.Behavior.kubernetesDefault());
        assertEquals(4, h.metricReplicas(4, new double[]{0.54, 0.54, 0.54, 0.54}, 0), "within 10 % tolerance: no change");
        assertEquals(6, h.metricReplicas(4, new double[]{0.75, 0.75, 0.75, 0.75}, 0), "ceil(4 x 1.5)");
        // a starting pod counts as 0 when scaling up: (0.75 x 4 + 0) / 5 / 0.5 = 1.2 -> ceil(6)
        assertEquals(6, h.metricReplicas(5, new double[]{0.75, 0.75, 0.75, 0.75}, 1));
    }

    @Test
    void hpaScaleDownWaitsForTheStabilisationWindowAndScaleUpIsRateLimited() {
        Hpa h = new Hpa(1, 100, 0.5, 0.1, Hpa.Behavior.kubernetesDefault());
        int r = 10;
        r = h.sync(0, r, fill(10, 0.5), 0);
        assertEquals(10, r);
        for (int t = 15; t < 300; t += 15) {
            r = h.sync(t, r, fill(r, 0.1), 0);
            assertEquals(10, r, "still within 300 s of a recommendation of 10 at t=" + t);
        }
        r = h.sync(315, r, fill(r, 0.1), 0);
        assertEquals(2, r, "ceil(10 x 0.2) once the window has passed");
        Hpa up = new Hpa(1, 100, 0.5, 0.1, Hpa.Behavior.kubernetesDefault());
        assertEquals(6, up.sync(0, 2, fill(2, 5.0), 0), "desired 20, but 2 pods may only grow to max(2 + 4 pods, 2 x 200 %) = 6 per 15 s");
        assertEquals(6, up.sync(10, 6, fill(6, 5.0), 0), "and not again within the same 15 s period");
        assertEquals(12, up.sync(30, 6, fill(6, 5.0), 0), "next period: max(6 + 4, 6 x 200 %) = 12");
    }

    private static double[] fill(int n, double v) {
        double[] a = new double[n];
        java.util.Arrays.fill(a, v);
        return a;
    }
}
