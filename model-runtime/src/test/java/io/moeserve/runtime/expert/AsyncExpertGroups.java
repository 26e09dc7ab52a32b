package io.moeserve.runtime.expert;

import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntPredicate;

/**
 * Expert groups that answer asynchronously, as pods do: each group's batch is computed on a thread of its own
 * after a random delay (0 to 300 µs), so answers arrive in any order and while the caller is still working. Every
 * (lane, group) has its own executor, as every pod computes on its own, and the groups load only their own experts.
 * A group can be made to fail ({@link #failing}) for the layers a test picks.
 */
public final class AsyncExpertGroups implements ExpertBatchDispatcher, AutoCloseable {
    private final List<Checkpoint> checkpoints = new ArrayList<>();
    private final LocalExpertExecutor[][] executors;
    private final Future<?>[][] pending;
    private final ExpertBatch[][] sent;
    private final int[] sentLayer;
    private final ExecutorService threads;
    private final Parallel parallel = new Parallel(1);
    /** The group that fails, or -1; and the layers at which it does. */
    private volatile int failingGroup = -1;
    private volatile IntPredicate failingLayers = l -> false;
    private int calls;
    private final int[] laneCalls;

    public AsyncExpertGroups(Path dir, ModelConfig config, List<? extends ExpertSelection> sets, int maxTokens, int lanes) {
        executors = new LocalExpertExecutor[lanes][sets.size()];
        for (int g = 0; g < sets.size(); g++) {
            Checkpoint ck = Checkpoint.open(dir);
            checkpoints.add(ck);
            CheckpointExpertStore store = ExpertLoader.loadHosted(config, ck, sets.get(g));
            for (int lane = 0; lane < lanes; lane++) {
                executors[lane][g] = new LocalExpertExecutor(store, new CpuMatmulKernels(parallel), maxTokens, config.moe().topK());
            }
        }
        pending = new Future<?>[lanes][sets.size()];
        sent = new ExpertBatch[lanes][];
        sentLayer = new int[lanes];
        laneCalls = new int[lanes];
        threads = Executors.newFixedThreadPool(lanes * sets.size(), r -> {
            Thread t = new Thread(r, "async-expert-group");
            t.setDaemon(true);
            return t;
        });
    }

    /** Group {@code group} fails every call at the layers {@code layers} accepts (-1: none fails). */
    public void failing(int group, IntPredicate layers) {
        failingLayers = layers;
        failingGroup = group;
    }

    /** Calls made so far (one per non-empty group batch). */
    public int calls() {
        return calls;
    }

    /** Calls made on lane {@code lane} so far. */
    public int calls(int lane) {
        return laneCalls[lane];
    }

    @Override
    public int lanes() {
        return executors.length;
    }

    @Override
    public void dispatch(long step, int layer, ExpertBatch[] batches) {
        begin(step, layer, batches, 0);
        await(0);
    }

    @Override
    public void begin(long step, int layer, ExpertBatch[] batches, int lane) {
        if (sent[lane] != null) throw new IllegalStateException("lane " + lane + " is busy");
        sent[lane] = batches;
        sentLayer[lane] = layer;
        laneCalls[lane]++;
        for (int g = 0; g < batches.length; g++) {
            ExpertBatch b = batches[g];
            if (b.size() == 0) continue;
            calls++;
            LocalExpertExecutor e = executors[lane][g];
            boolean fails = g == failingGroup && failingLayers.test(layer);
            pending[lane][g] = threads.submit(() -> {
                LockSupport.parkNanos(ThreadLocalRandom.current().nextLong(300_000));
                if (fails) {
                    Arrays.fill(b.out, Float.NaN);
                    throw new IllegalStateException("down");
                }
                e.computeExperts(step, layer, b.size(), b.k(), b.x, b.experts, b.weights, b.out);
                return null;
            });
        }
    }

    @Override
    public void await(int lane) {
        ExpertBatch[] batches = sent[lane];
        sent[lane] = null;
        List<Integer> failed = new ArrayList<>();
        for (int g = 0; g < batches.length; g++) {
            Future<?> f = pending[lane][g];
            pending[lane][g] = null;
            if (f == null) continue;
            try {
                f.get();
            } catch (ExecutionException e) {
                failed.add(g);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
        }
        if (failed.isEmpty()) return;
        int[] rows = failed.stream().flatMapToInt(g -> Arrays.stream(batches[g].rows, 0, batches[g].size())).toArray();
        throw new ExpertUnavailableException(sentLayer[lane], "g" + failed.getFirst(), rows,
                failed.stream().mapToInt(Integer::intValue).toArray(), "group(s) " + failed + " down", null);
    }

    @Override
    public void close() {
        threads.shutdownNow();
        parallel.close();
        checkpoints.forEach(Checkpoint::close);
    }
}
