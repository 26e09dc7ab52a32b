package io.moeserve.runtime.expert;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Which routed experts may keep their weights in memory when a process hosts more expert bytes than its budget:
 * a resident set, least recently used out first, with the rest read from the mapped checkpoint on demand; and the
 * prefetch of experts the next layer is likely to pick (the caller predicts them: {@link OffloadingExpertExecutor}).
 *
 * <p>Design. On the CPU the weights are already views of the mapped safetensors, so "resident" means pages of the
 * mapping in this process's page tables (its RSS), and moving an expert in or out never copies it: admitting one
 * lets the kernels fault its pages in as they read them (or the prefetch worker touches them first,
 * {@link MemorySegment#load}: {@code madvise(MADV_WILLNEED)} then a read of each page), and evicting one is
 * {@link MemorySegment#unload}, {@code madvise(MADV_DONTNEED)}, which drops the pages from the page tables (the
 * page cache may keep them, reclaimable, so a later miss is often a minor fault rather than a disk read). We chose
 * this over copying hot experts into an owned arena because the kernels then read the very same bytes whether an
 * expert is resident or not: offloading cannot change a bit of the output, and nothing needs rewiring when the set
 * changes. A device backend would hold the same set in device memory and upload on a miss; the bookkeeping here is
 * what it would keep.
 *
 * <p>Accounting. The resident bytes are the sum of the resident experts' weight bytes (codes, scales, zero points)
 * and never exceed the budget: an expert is admitted only after least recently used ones are evicted to make room.
 * The experts of the call being computed are never evicted for another one of the same call or for a prefetch;
 * a miss that cannot be admitted (the call's own experts fill the budget, or the expert alone is larger) is
 * streamed: read from the mapping for this call and unloaded after it. Within a call the pages touched can thus
 * exceed the budget by that call's streamed experts; between calls they cannot (up to the page at each end of an
 * expert's ranges, which unload rounds out to whole pages). Each distinct (layer, expert) of a call is one lookup,
 * a hit or a miss; a prefetched expert is used (a later call hit it) or wasted (evicted unused) or still pending.
 *
 * <p>Threads. Calls come from one compute thread at a time; the prefetch worker touches pages on its own daemon
 * thread so that a prefetch overlaps the current layer's compute. Every change of the set happens under this
 * object's lock, once per call and per prefetch (not per token); the arrays are allocated at construction, so the
 * per-call path allocates nothing.
 */
public final class ExpertResidency implements AutoCloseable {
    private final CheckpointExpertStore store;
    private final int numExperts;
    private final long budget;
    private final long[] bytes;        // per slot (layer · numExperts + expert); -1 where not hosted
    private final MemorySegment[][] ranges; // per slot, the expert's mapped ranges (codes, scales, zero points)
    private final int[] prev;          // LRU list: the head sentinel is slot `slots`, most recent next to it
    private final int[] next;
    private final boolean[] resident;
    private final boolean[] prefetched; // admitted by a prefetch and not used since
    private final long[] stamp;        // the call a slot was last looked up or prefetched in
    private final int[] streamed;
    private int streamedCount;
    private long call;
    private long residentBytes;
    private long hits;
    private long misses;
    private long prefetches;
    private long prefetchesUsed;
    private long prefetchesWasted;
    private long evictions;
    // Slots the worker is to load, a ring; queued[] keeps a slot in it at most once.
    private final int[] queue;
    private final boolean[] queued;
    private int queueHead;
    private int queueSize;
    private Thread worker;
    private boolean closed;

    /**
     * @param budgetBytes most expert weight bytes kept resident, ≥ 0
     * @throws IllegalArgumentException if a hosted expert's weights are not mapped from the checkpoint (quantized
     *                                  at load into owned memory, say): dropping their pages would lose them
     */
    public ExpertResidency(CheckpointExpertStore store, long budgetBytes) {
        if (budgetBytes < 0) throw new IllegalArgumentException("offload budget must be ≥ 0 bytes, not " + budgetBytes);
        this.store = store;
        this.numExperts = store.numExperts();
        this.budget = budgetBytes;
        int slots = store.numLayers() * numExperts;
        this.bytes = new long[slots];
        this.ranges = new MemorySegment[slots][];
        this.prev = new int[slots + 1];
        this.next = new int[slots + 1];
        this.resident = new boolean[slots];
        this.prefetched = new boolean[slots];
        this.stamp = new long[slots];
        this.streamed = new int[slots];
        this.queue = new int[slots];
        this.queued = new boolean[slots];
        for (int s = 0; s < slots; s++) {
            ExpertWeights w = store.expert(s / numExperts, s % numExperts);
            bytes[s] = w == null ? -1 : w.byteSize();
            if (w != null) {
                ranges[s] = segments(w);
                for (MemorySegment m : ranges[s]) {
                    if (!m.isMapped()) {
                        throw new IllegalArgumentException("expert offloading needs the experts mapped from the checkpoint, but expert "
                                + s % numExperts + " of layer " + s / numExperts + " is held in owned memory (quantized at load?)");
                    }
                }
            }
        }
        prev[slots] = next[slots] = slots;
        Arrays.fill(stamp, -1);
    }

    /** Drops the pages of every hosted expert: the set starts empty, as its accounting does. */
    public synchronized void unloadAll() {
        for (int s = 0; s < bytes.length; s++) if (bytes[s] >= 0) unload(s);
    }

    /**
     * Looks up the distinct experts among {@code experts[0, count)} of {@code layer} (entries of -1 and experts not
     * hosted here are skipped), admitting misses; call before the compute reads them, and {@link #afterCall} after.
     */
    public synchronized void beforeCall(int layer, int[] experts, int count) {
        call++;
        int base = layer * numExperts;
        for (int i = 0; i < count; i++) {
            int e = experts[i];
            if (e < 0 || e >= numExperts) continue;
            int s = base + e;
            if (bytes[s] < 0 || stamp[s] == call) continue;
            stamp[s] = call;
            if (resident[s]) {
                hits++;
                if (prefetched[s]) {
                    prefetched[s] = false;
                    prefetchesUsed++;
                }
                unlink(s);
                pushFront(s);
            } else {
                misses++;
                if (!admit(s)) streamed[streamedCount++] = s;
            }
        }
    }

    /** Unloads the call's streamed experts. */
    public synchronized void afterCall() {
        for (int i = 0; i < streamedCount; i++) {
            if (!resident[streamed[i]]) unload(streamed[i]);
        }
        streamedCount = 0;
    }

    /**
     * Admits the distinct experts among {@code experts[0, count)} of {@code layer} that are hosted here and not
     * resident, as far as room can be made without evicting the current call's experts, and has the worker read
     * their pages in. Call between {@link #beforeCall} and the compute, so they load while it runs.
     */
    public synchronized void prefetch(int layer, int[] experts, int count) {
        if (closed) return;
        int base = layer * numExperts;
        boolean queuedAny = false;
        for (int i = 0; i < count; i++) {
            int e = experts[i];
            if (e < 0 || e >= numExperts) continue;
            int s = base + e;
            if (bytes[s] < 0 || resident[s] || stamp[s] == call) continue;
            stamp[s] = call; // not evicted by the next prediction of this same call
            if (!admit(s)) continue;
            prefetched[s] = true;
            prefetches++;
            if (!queued[s]) {
                queued[s] = true;
                queue[(queueHead + queueSize) % queue.length] = s;
                queueSize++;
                queuedAny = true;
            }
        }
        if (queuedAny) {
            if (worker == null) startWorker();
            notifyAll();
        }
    }

    /** Makes room for slot s and puts it at the front; false (and nothing changed but evictions) if it cannot fit. */
    private boolean admit(int s) {
        long need = bytes[s];
        if (need > budget) return false;
        while (residentBytes + need > budget) {
            int victim = prev[bytes.length];
            while (victim != bytes.length && stamp[victim] == call) victim = prev[victim];
            if (victim == bytes.length) return false;
            evict(victim);
        }
        resident[s] = true;
        residentBytes += need;
        pushFront(s);
        return true;
    }

    private void evict(int s) {
        unlink(s);
        resident[s] = false;
        residentBytes -= bytes[s];
        evictions++;
        if (prefetched[s]) {
            prefetched[s] = false;
            prefetchesWasted++;
        }
        unload(s);
    }

    private void unlink(int s) {
        next[prev[s]] = next[s];
        prev[next[s]] = prev[s];
    }

    private void pushFront(int s) {
        int head = bytes.length;
        next[s] = next[head];
        prev[s] = head;
        prev[next[head]] = s;
        next[head] = s;
    }

    private void unload(int s) {
        for (MemorySegment m : ranges[s]) m.unload();
    }

    private static MemorySegment[] segments(ExpertWeights w) {
        List<MemorySegment> out = new ArrayList<>();
        for (var m : w.matrices()) {
            out.add(m.data());
            if (m.isQuantized()) {
                out.add(m.quantization().scales());
                if (m.quantization().zeroPoints() != null) out.add(m.quantization().zeroPoints());
            }
        }
        return out.toArray(MemorySegment[]::new);
    }

    private void startWorker() {
        worker = Thread.ofPlatform().daemon().name("expert-prefetch").start(this::work);
    }

    /** The worker: reads the queued experts' pages in, outside the lock, so compute goes on meanwhile. */
    private void work() {
        while (true) {
            int s;
            synchronized (this) {
                while (queueSize == 0 && !closed) {
                    try {
                        wait();
                    } catch (InterruptedException e) {
                        return;
                    }
                }
                if (closed) return;
                s = queue[queueHead];
                queueHead = (queueHead + 1) % queue.length;
                queueSize--;
                queued[s] = false;
                if (!resident[s]) continue;
            }
            ExpertWeights w = store.expert(s / numExperts, s % numExperts);
            w.prefault();
            synchronized (this) {
                // Evicted while its pages were being read: drop them again, so the pages follow the accounting.
                if (!resident[s]) unload(s);
            }
        }
    }

    @Override
    public synchronized void close() {
        closed = true;
        notifyAll();
    }

    public long budgetBytes() {
        return budget;
    }

    public synchronized long residentBytes() {
        return residentBytes;
    }

    /** The resident bytes recounted from the set itself (for tests: equals {@link #residentBytes}). */
    public synchronized long residentBytesRecounted() {
        long n = 0;
        for (int s = 0; s < resident.length; s++) if (resident[s]) n += bytes[s];
        return n;
    }

    public synchronized long hits() {
        return hits;
    }

    public synchronized long misses() {
        return misses;
    }

    /** Experts admitted by a prefetch. */
    public synchronized long prefetches() {
        return prefetches;
    }

    /** Prefetched experts a later call hit. */
    public synchronized long prefetchesUsed() {
        return prefetchesUsed;
    }

    /** Prefetched experts evicted before any call used them. */
    public synchronized long prefetchesWasted() {
        return prefetchesWasted;
    }

    /** Prefetched experts still resident and not used yet. */
    public synchronized long prefetchesPending() {
        long n = 0;
        for (boolean p : prefetched) if (p) n++;
        return n;
    }

    public synchronized long evictions() {
        return evictions;
    }

    /** Hits over lookups, 0 before any. */
    public synchronized double hitRate() {
        long lookups = hits + misses;
        return lookups == 0 ? 0 : (double) hits / lookups;
    }

    /** One line for the {@code moe} command's reports. */
    public synchronized String report() {
        return String.format(Locale.ROOT,
                "offload budget %.1f MiB: hit rate %.4f (%d hits, %d misses), %d evictions, prefetches %d (used %d, wasted %d, pending %d),"
                        + " resident %.1f MiB", budget / 1048576.0, hitRate(), hits, misses, evictions, prefetches, prefetchesUsed,
                prefetchesWasted, prefetchesPending(), residentBytes / 1048576.0);
    }
}
