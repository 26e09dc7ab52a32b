package io.moeserve.runtime.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * Memory for weights this process makes itself at load (transposed or quantized copies), asked for in 2 MiB pages.
 *
 * <p>Why: a decode step streams every active weight once, and in 4 KiB pages the TLB misses cost about a tenth of
 * the step on these VMs (BENCHMARKS.md, "Huge pages"). Mapped checkpoints get 2 MiB pages from the page cache;
 * anonymous memory gets them only where transparent huge pages are "always", or "madvise" and the range is advised
 * ({@code madvise(MADV_HUGEPAGE)}), so the allocation is 2 MiB-aligned and advised. Where madvise is missing (not
 * Linux) or refuses, the memory is the same, in small pages. Callers allocate large blocks (a layer's worth), since
 * the alignment may waste up to 2 MiB per allocation. Freed when unreachable (an automatic arena).
 */
public final class HugePages {
    private static final long HUGE = 2L << 20;
    private static final int MADV_DONTNEED = 4;
    private static final int MADV_HUGEPAGE = 14;
    private static final MethodHandle MADVISE = madvise();

    private HugePages() {}

    /** {@code bytes} of zeroed memory, 2 MiB-aligned and advised for huge pages. */
    public static MemorySegment allocate(long bytes) {
        long size = Math.max(HUGE, (bytes + HUGE - 1) / HUGE * HUGE);
        MemorySegment s = Arena.ofAuto().allocate(size, HUGE);
        advise(s);
        return s.asSlice(0, bytes);
    }

    /**
     * Advises a 2 MiB-aligned, freshly zeroed segment for huge pages: 0 when the kernel took the advice, else -1.
     * The allocation zeroed it, which already faulted it in 4 KiB pages, so those are dropped first
     * (MADV_DONTNEED: private anonymous memory reads back as zeros) and the next touch faults 2 MiB pages.
     */
    static int advise(MemorySegment s) {
        if (MADVISE == null) return -1;
        try {
            int dropped = (int) MADVISE.invokeExact(s, s.byteSize(), MADV_DONTNEED);
            return dropped != 0 ? dropped : (int) MADVISE.invokeExact(s, s.byteSize(), MADV_HUGEPAGE);
        } catch (Throwable e) {
            return -1; // advice only: small pages are correct too
        }
    }

    private static MethodHandle madvise() {
        try {
            Linker linker = Linker.nativeLinker();
            return linker.defaultLookup().find("madvise").map(f -> linker.downcallHandle(f,
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT)))
                    .orElse(null);
        } catch (RuntimeException | LinkageError e) {
            return null;
        }
    }
}
