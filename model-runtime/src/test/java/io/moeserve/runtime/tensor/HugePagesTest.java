package io.moeserve.runtime.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

class HugePagesTest {

    @Test
    void blocksAreAlignedZeroedAndTheKernelTakesTheAdvice() {
        var s = HugePages.allocate(3_000_000);
        assertEquals(3_000_000, s.byteSize());
        assertEquals(0, s.address() % (2 << 20), "2 MiB-aligned");
        for (long i = 0; i < s.byteSize(); i += 4099) assertEquals(0, s.get(ValueLayout.JAVA_BYTE, i));
        // This project runs on Linux, where madvise(MADV_HUGEPAGE) on an aligned anonymous range succeeds.
        assertEquals(0, HugePages.advise(Arena.ofAuto().allocate(4L << 20, 2L << 20)));
    }
}
