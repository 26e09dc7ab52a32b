package io.moeserve.runtime.generate;

import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.KvCacheFullException;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.RoutingObserver;
import io.moeserve.runtime.model.StepBatch;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The generation loop: forward steps over every sequence in flight, with sequences joining and leaving between
 * steps (continuous batching). The router's engine and the {@link Generator} of the moe command and the tests both
 * run it; they differ only in who admits sequences and what happens to their tokens.
 *
 * <p>Design. Each {@link #step} holds one decode token of every decoding sequence, then fills what is left of the
 * step's token budget with prompt chunks of the sequences still prefilling, in the order they were admitted, so a
 * long prompt is prefilled in chunks while the others keep decoding. After the forward step, every sequence whose
 * last position got logits samples its next token (masked first by its {@link TokenConstraint}, if any); a sequence
 * ends at a stop token, when its constraint's output is complete, at its max_new_tokens or at the
 * context limit, and its KV-cache slot is freed at once. A step either completes or throws before anything is
 * committed: the KV cache keeps only completed steps' lengths, prefill progress advances and tokens are sampled
 * only afterwards. So a caller that catches a failed step (an expert group down, {@code ExpertUnavailableException},
 * naming the step rows that needed it) can {@link #end} the sequences of those rows ({@link #ownerOfRow}) and
 * step again.
 *
 * <p>KV cache. Blocks are taken as sequences grow, not reserved up front: before each step, {@link #allocate} takes
 * the blocks each running sequence's tokens of the step need, oldest first (a prompt chunk shrinks to what the pool
 * has left). When the pool runs dry for a sequence, the youngest running sequence is preempted, as vLLM's scheduler
 * does: its blocks go back to the pool and it leaves the loop for {@link #pollPreempted}, to be admitted again
 * later, ahead of new arrivals. It is recomputed, not swapped: its next prefill runs the prompt and every token it
 * generated so far, and the last position's logits give the next token, as a decode step would have. Everything
 * else about the sequence stays in its object (sampler with its seeded generator and penalty counts, constraint,
 * tokens already produced, where they go), so it goes on exactly where it stopped; it is request migration's
 * resumption (the prompt plus resumed output) without the state having to be rebuilt. The oldest sequence is never
 * preempted for a younger one, so it always progresses; a sequence alone that cannot grow (longer than the whole
 * cache) makes the step throw {@link KvCacheFullException} instead of preempting itself over and over. Admission by
 * actual use is {@link #fits}: the blocks of the prompt, plus those the prefilling sequences have still to take,
 * leave a watermark free.
 *
 * <p>Prefix caching, when the KV cache has it on: before a prefilling sequence's chunk, the loop looks its prompt's
 * full blocks up by their hash chain and points the sequence's block table at the cached ones, skipping their
 * computation; the block holding the prompt's last token is always computed, so there are logits to sample from.
 * When the next block is not cached but a sequence admitted earlier is computing the same prefix right now (the n
 * choices of one request, all admitted together), the later one waits a step and takes it when it is done, so the
 * prompt is computed once. After each step, every full block a sequence has computed (prompt or generated tokens)
 * is registered. A sequence preempted and admitted again looks its blocks up afresh, its generated tokens included.
 * The chain starts from the sequence's expert skip threshold, the one thing besides its tokens that changes a
 * position's keys and values; sequences whose experts were masked (degraded mode) register nothing ({@link
 * Sequence#excludeFromPrefixCache}). A cached block holds bit for bit the keys and values its prefix computes on
 * its own, since a position's keys and values do not depend on the rows it is batched with.
 *
 * <p>Everything per step is preallocated: the step batch, the logits rows, the row-to-sequence tables. Not thread-safe:
 * one thread admits, steps and ends sequences.
 */
public final class GenerationLoop {
    private final MoeModel model;
    private final KvCache cache;
    private final RoutingObserver observer;
    private final int vocab;
    private final StepBatch batch;
    private final float[] logits;
    private final Sequence[] rowOwner;
    private final Sequence[] logitOwner;
    private final List<Sequence> running = new ArrayList<>();
    private final List<Sequence> runningView = Collections.unmodifiableList(running);
    private final ArrayDeque<Sequence> preempted = new ArrayDeque<>();
    private long preemptions;
    /** One block's tokens, for the prefix cache's lookups. */
    private final int[] blockTokens;

    /**
     * @param maxSequences most sequences admitted at once (logits rows are allocated for them)
     * @param observer     sees every routing decision of every step
     */
    public GenerationLoop(MoeModel model, KvCache cache, int maxSequences, RoutingObserver observer) {
        this.model = model;
        this.cache = cache;
        this.observer = observer;
        this.vocab = model.config().vocabSize();
        int stepTokens = model.maxStepTokens();
        this.batch = new StepBatch(stepTokens);
        this.logits = new float[Math.max(1, Math.min(maxSequences, stepTokens)) * vocab];
        this.rowOwner = new Sequence[stepTokens];
        this.logitOwner = new Sequence[Math.max(1, maxSequences)];
        this.blockTokens = new int[cache.blockSize()];
    }

    /**
     * Takes a KV-cache slot for the sequence and adds it to those running; false, and nothing changed, when the
     * cache has no free slot or the loop already runs as many sequences as it has logits rows.
     *
     * @throws IllegalArgumentException if the prompt does not fit the context limit
     */
    public boolean admit(Sequence s) {
        if (s.phase != Sequence.Phase.WAITING) throw new IllegalStateException("sequence already admitted");
        if (s.prompt().length >= model.maxContext()) {
            throw new IllegalArgumentException("prompt of " + s.prompt().length + " tokens does not fit the context limit "
                    + model.maxContext());
        }
        if (running.size() == logitOwner.length) return false;
        int slot = cache.allocateSequence();
        if (slot < 0) return false;
        s.slot = slot;
        s.phase = Sequence.Phase.PREFILL;
        if (cache.prefixCaching() && s.blockHashes == null) {
            s.blockHashes = new long[(s.prompt().length + s.maxNewTokens()) / cache.blockSize() + 1];
        }
        // A sequence admitted again (after preemption) hashes and registers its blocks afresh in its new slot.
        s.hashedBlocks = 0;
        s.registeredBlocks = 0;
        running.add(s);
        return true;
    }

    /**
     * Whether admitting the sequence now leaves at least {@code watermarkBlocks} blocks of the pool free once it and
     * the sequences still prefilling hold their prompts' blocks (admission by actual use; the blocks the sequences
     * take as they generate come out of what is left, and preemption settles the rest).
     */
    public boolean fits(Sequence s, int watermarkBlocks) {
        int pending = 0;
        for (int i = 0; i < running.size(); i++) {
            Sequence r = running.get(i);
            if (r.phase == Sequence.Phase.PREFILL) pending += Math.max(0, cache.blocksFor(r.prefillEnd) - cache.blockCount(r.slot));
        }
        return cache.freeBlocks() - pending - cache.blocksFor(s.prefillEnd) >= watermarkBlocks;
    }

    /**
     * The next sequence preempted by a step and not yet taken, youngest first: a caller that puts each at the front
     * of its waiting queue as it takes it gets them back in admission order, ahead of everything that came later.
     * Null when there is none.
     */
    public Sequence pollPreempted() {
        return preempted.pollFirst();
    }

    /** Sequences preempted since the loop was made. */
    public long preemptions() {
        return preemptions;
    }

    /** The sequences admitted and not ended, in admission order. */
    public List<Sequence> running() {
        return runningView;
    }

    /**
     * Runs one forward step over the running sequences (none: nothing happens); may preempt the youngest first.
     *
     * @throws KvCacheFullException when a sequence running alone needs more blocks than the pool holds
     */
    public void step() {
        if (running.isEmpty()) return;
        if (cache.prefixCaching()) {
            for (int i = 0; i < running.size(); i++) {
                Sequence s = running.get(i);
                s.waitsForPrefix = s.phase == Sequence.Phase.PREFILL && reuse(s, i);
            }
        }
        allocate();
        int logitRows = build();
        model.forward(batch, cache, logits, observer);
        for (Sequence s : running) {
            if (s.phase == Sequence.Phase.PREFILL) s.prefilled += s.chunk;
        }
        if (cache.prefixCaching()) register();
        for (int row = 0; row < logitRows; row++) {
            Sequence s = logitOwner[row];
            if (s.phase == Sequence.Phase.PREFILL) s.phase = Sequence.Phase.DECODE;
            take(s, row * vocab);
        }
        for (int i = running.size() - 1; i >= 0; i--) {
            if (running.get(i).phase == Sequence.Phase.DONE) running.remove(i);
        }
    }

    /** The sequence whose token is row {@code row} of the step last built (for a failed step's rows). */
    public Sequence ownerOfRow(int row) {
        return rowOwner[row];
    }

    /** The step last built: which rows hold which slots (for a failed step's KV-cache slot). */
    public StepBatch batch() {
        return batch;
    }

    /** Ends a running or preempted sequence from outside (cancelled, failed, expired): frees its slot; no callback. */
    public void end(Sequence s) {
        release(s);
        running.remove(s);
        preempted.remove(s);
    }

    /**
     * Takes the blocks this step needs, oldest sequence first, and plans each prompt chunk: decode tokens come
     * first in the step's token budget, prompt chunks share what is left in admission order. A sequence the pool
     * cannot serve preempts the youngest running sequence (itself, when it is the youngest) until it is served;
     * a prompt chunk shrinks to the blocks left before anyone is preempted for it.
     */
    private void allocate() {
        int decoding = 0;
        for (int i = 0; i < running.size(); i++) if (running.get(i).phase == Sequence.Phase.DECODE) decoding++;
        int budget = Math.max(0, batch.capacity() - decoding);
        int blockSize = cache.blockSize();
        for (int i = 0; i < running.size(); i++) {
            Sequence s = running.get(i);
            boolean decode = s.phase == Sequence.Phase.DECODE;
            if (!decode) {
                s.chunk = s.waitsForPrefix ? 0 : Math.min(budget, s.prefillEnd - s.prefilled);
                if (s.chunk == 0) continue;
            }
            while (!cache.reserve(s.slot, decode ? s.length() : s.prefilled + s.chunk)) {
                if (!decode) {
                    int room = (cache.blockCount(s.slot) + cache.freeBlocks()) * blockSize - s.prefilled;
                    if (room > 0) {
                        s.chunk = Math.min(s.chunk, room);
                        continue;
                    }
                }
                if (running.size() == 1) throw new KvCacheFullException(s.slot, decode ? s.length() : s.prefilled + s.chunk);
                Sequence youngest = running.get(running.size() - 1);
                preempt(youngest);
                if (youngest == s) break;
            }
            if (!decode && s.phase == Sequence.Phase.PREFILL) budget -= s.chunk;
        }
    }

    /** Drops a running sequence's KV cache and sets it back to be admitted again, its prefill to recompute it. */
    private void preempt(Sequence s) {
        cache.release(s.slot);
        s.slot = -1;
        s.phase = Sequence.Phase.WAITING;
        s.prefilled = 0;
        s.chunk = 0;
        s.prefillEnd = s.length();
        s.preemptions++;
        preemptions++;
        running.remove(s);
        preempted.addLast(s);
    }

    /** Fills the step batch: decode tokens first, then the planned prompt chunks; returns the number of logit rows. */
    private int build() {
        batch.clear();
        int logitRows = 0;
        for (Sequence s : running) {
            if (s.phase != Sequence.Phase.DECODE) continue;
            rowOwner[batch.size()] = s;
            batch.add(s.generated[s.generatedCount - 1], s.slot, s.length() - 1, true, s.skipThreshold());
            logitOwner[logitRows++] = s;
        }
        for (Sequence s : running) {
            if (s.phase != Sequence.Phase.PREFILL) continue;
            // allocate() planned the chunk within the budget; a preempted sequence's prefill runs its output too.
            for (int p = s.prefilled; p < s.prefilled + s.chunk; p++) {
                boolean last = p == s.prefillEnd - 1;
                rowOwner[batch.size()] = s;
                batch.add(s.tokenAt(p), s.slot, p, last, s.skipThreshold());
                if (last) logitOwner[logitRows++] = s;
            }
        }
        return logitRows;
    }

    /**
     * Before a prefilling sequence's chunk: takes the cached blocks that continue what it has, up to the block
     * before the one holding its prompt's last token; true when it should wait this step because the next block is
     * being computed by a sequence admitted before it ({@code index} is its place in {@link #running}).
     */
    private boolean reuse(Sequence s, int index) {
        int bs = cache.blockSize();
        if (!s.prefixQueried) {
            s.prefixQueried = true;
            cache.countPrefixQuery(s.prompt().length);
        }
        if (s.prefilled % bs != 0) return false;
        // A preempted sequence's prefill runs its generated tokens too: they may be cached as well.
        int limit = (s.prefillEnd - 1) / bs;
        hashBlocks(s, limit);
        for (int k = s.prefilled / bs; k < limit; k++) {
            fill(s, k);
            int block = cache.cachedBlock(s.blockHashes[k], parentHash(s, k), blockTokens, 0);
            if (block < 0) return computedBefore(s, index, k);
            cache.share(s.slot, k, block);
            s.prefilled = (k + 1) * bs;
            s.cachedTokens += bs;
            s.registeredBlocks = Math.max(s.registeredBlocks, k + 1);
        }
        return false;
    }

    /** Whether a sequence before {@code index} is prefilling block k of the same prefix and will register it. */
    private boolean computedBefore(Sequence s, int index, int k) {
        int end = (k + 1) * cache.blockSize();
        for (int i = 0; i < index; i++) {
            Sequence a = running.get(i);
            if (a.phase == Sequence.Phase.PREFILL && !a.uncacheable && a.hashedBlocks > k && a.blockHashes[k] == s.blockHashes[k]
                    && a.prefilled < end && end <= a.prefillEnd) {
                return true;
            }
        }
        return false;
    }

    /** After a step: caches every block the running sequences have filled since the last. */
    private void register() {
        int bs = cache.blockSize();
        for (Sequence s : running) {
            if (s.uncacheable || s.slot < 0) continue;
            int full = cache.length(s.slot) / bs;
            if (full <= s.registeredBlocks) continue;
            hashBlocks(s, full);
            for (int k = s.registeredBlocks; k < full; k++) {
                fill(s, k);
                cache.register(s.slot, k, s.blockHashes[k], parentHash(s, k), blockTokens, 0);
            }
            s.registeredBlocks = full;
        }
    }

    /** Extends a sequence's hash chain to its first {@code blocks} blocks, whose tokens must all be known. */
    private void hashBlocks(Sequence s, int blocks) {
        int bs = cache.blockSize();
        for (int k = s.hashedBlocks; k < blocks; k++) {
            long h = parentHash(s, k);
            for (int p = k * bs; p < (k + 1) * bs; p++) h = mix(h ^ s.tokenAt(p));
            s.blockHashes[k] = h;
        }
        s.hashedBlocks = Math.max(s.hashedBlocks, blocks);
    }

    /** The hash a block's chain continues: its predecessor's, or for the first the sequence's skip threshold's. */
    private static long parentHash(Sequence s, int k) {
        return k == 0 ? mix(0x243F6A8885A308D3L ^ Float.floatToIntBits(s.skipThreshold())) : s.blockHashes[k - 1];
    }

    private void fill(Sequence s, int k) {
        int from = k * blockTokens.length;
        for (int i = 0; i < blockTokens.length; i++) blockTokens[i] = s.tokenAt(from + i);
    }

    /** MurmurHash3's 64-bit finalizer over the chain so far plus one token. */
    private static long mix(long h) {
        h = (h + 0x9E3779B97F4A7C15L) ^ (h >>> 33);
        h *= 0xFF51AFD7ED558CCDL;
        h ^= h >>> 33;
        h *= 0xC4CEB9FE1A85EC53L;
        return h ^ (h >>> 33);
    }

    /** Samples the sequence's next token from its logits row; ends the sequence when that token is its last. */
    private void take(Sequence s, int off) {
        s.onLogits(logits, off, vocab);
        if (s.maxNewTokens() == 0) {
            finish(s, FinishReason.LENGTH);
            return;
        }
        Sampler sampler = s.sampler();
        TokenConstraint constraint = s.constraint();
        if (constraint != null) constraint.mask(logits, off, vocab);
        int token = sampler.sample(logits, off);
        sampler.accept(token);
        if (constraint != null) constraint.accept(token);
        s.generated[s.generatedCount++] = token;
        FinishReason reason = null;
        if (s.isStop(token)) reason = FinishReason.STOP;
        else if (constraint != null && constraint.complete()) reason = FinishReason.STOP;
        else if (s.generatedCount >= s.maxNewTokens() || s.length() >= model.maxContext()) reason = FinishReason.LENGTH;
        if (reason != null) finish(s, reason);
        s.onToken(token, reason);
    }

    private void finish(Sequence s, FinishReason reason) {
        s.finishReason = reason;
        release(s);
    }

    private void release(Sequence s) {
        if (s.phase == Sequence.Phase.DONE) return;
        s.phase = Sequence.Phase.DONE;
        if (s.slot >= 0) {
            cache.release(s.slot);
            s.slot = -1;
        }
    }
}
