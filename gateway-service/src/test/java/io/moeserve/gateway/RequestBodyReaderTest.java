package io.moeserve.gateway;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.quarkus.runtime.configuration.MemorySize;
import java.math.BigInteger;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** The body budget's accounting; LargeBodyBurstIT shows it holding a burst off the packaged gateway's heap. */
class RequestBodyReaderTest {
    private static RequestBodyReader reader(long budget) {
        return new RequestBodyReader(Optional.of(new MemorySize(BigInteger.valueOf(4 << 20))),
                Optional.of(new MemorySize(BigInteger.valueOf(budget))), null);
    }

    @Test
    void bodiesShareTheBudgetUntilTheyAreGivenBack() {
        RequestBodyReader r = reader(10 << 20);
        assertTrue(r.reserve(4 << 20, 0));
        assertTrue(r.reserve(4 << 20, 0));
        assertFalse(r.reserve(4 << 20, 0), "12 MiB in a 10 MiB budget");
        assertEquals(8 << 20, r.held());
        r.release(4 << 20);
        assertTrue(r.reserve(4 << 20, 0));
        r.release(4 << 20);
        r.release(4 << 20);
        assertEquals(0, r.held());
    }

    /** A budget smaller than the cap must not refuse every body: one alone always fits, even as it grows. */
    @Test
    void aLoneBodyFitsWhateverTheBudget() {
        RequestBodyReader r = reader(1 << 20);
        assertTrue(r.reserve(3 << 20, 0));
        assertTrue(r.reserve(1 << 20, 3 << 20), "more for the same request, which holds everything held");
        assertFalse(r.reserve(100 << 10, 0), "another request waits for it");
        r.release(4 << 20);
        assertTrue(r.reserve(100 << 10, 0));
    }
}
