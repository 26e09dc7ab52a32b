package io.moeserve.runtime.kernel;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.Test;

/** The pool's parking and waking: idle workers park, {@link Parallel#wake} gets them spinning again, calls stay right. */
class ParallelTest {

    @Test
    void wakeUnparksIdleWorkersUntilTheCallerLetsThemParkAgain() {
        try (Parallel pool = new Parallel(3, 1_000)) {
            int[] chunks = run(pool, 12);
            assertArrayEquals(expected(12), chunks);
            // Not kept awake: after their 1 µs spin both workers park.
            assertTrue(within(() -> pool.parkedWorkers() == 2), "the idle workers never parked");
            pool.wake();
            assertTrue(within(() -> pool.parkedWorkers() == 0), "wake() left a worker parked");
            // They spin while awake, and the next call finds them running.
            assertArrayEquals(expected(12), run(pool, 12));
            assertFalse(within(() -> pool.parkedWorkers() > 0, 50), "a woken worker parked while the pool was awake");
            pool.stayAwake(false);
            assertTrue(within(() -> pool.parkedWorkers() == 2), "the workers did not park once the pool was let sleep");
            assertArrayEquals(expected(7), run(pool, 7));
        }
    }

    @Test
    void callsRacingWakeAndParkingComputeEveryChunkOnce() {
        try (Parallel pool = new Parallel(2, 0)) {
            for (int i = 0; i < 2_000; i++) {
                if (i % 3 == 0) pool.wake();
                if (i % 5 == 0) pool.stayAwake(false);
                int n = 1 + i % 9;
                assertArrayEquals(expected(n), run(pool, n));
            }
        }
    }

    /** Each index's count of visits. */
    private static int[] run(Parallel pool, int n) {
        int[] seen = new int[n];
        pool.forRange(n, (from, to) -> {
            for (int i = from; i < to; i++) seen[i]++;
        });
        return seen;
    }

    private static int[] expected(int n) {
        int[] ones = new int[n];
        Arrays.fill(ones, 1);
        return ones;
    }

    private static boolean within(BooleanSupplier condition) {
        return within(condition, 5_000);
    }

    private static boolean within(BooleanSupplier condition, long millis) {
        long deadline = System.nanoTime() + millis * 1_000_000;
        while (System.nanoTime() - deadline < 0) {
            if (condition.getAsBoolean()) return true;
            Thread.onSpinWait();
            Thread.yield();
        }
        return condition.getAsBoolean();
    }
}
