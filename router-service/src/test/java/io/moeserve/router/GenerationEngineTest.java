package io.moeserve.router;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.moeserve.proto.router.v1.FinishReason;
import io.moeserve.proto.router.v1.GenerateRequest;
import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.proto.router.v1.SamplingParameters;
import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.generate.GenerationRequest;
import io.moeserve.runtime.generate.Generator;
import io.moeserve.runtime.generate.SamplingParams;
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import io.moeserve.runtime.model.KvCache;
import io.moeserve.runtime.model.KvCacheDtype;
import io.moeserve.runtime.model.ModelOptions;
import io.moeserve.runtime.model.MoeModel;
import io.smallrye.mutiny.Multi;
import io.smallrye.mutiny.helpers.test.AssertSubscriber;
import io.smallrye.mutiny.subscription.BackPressureStrategy;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The engine's admission and preemption, stepped through on the test's thread ({@link GenerationEngine#cycle}, the
 * engine's own thread never started), on the tiny router model with a 96-token context and a small KV cache.
 */
class GenerationEngineTest {
    private static final int CONTEXT = 96;

    private MoeModel model;
    private SimpleMeterRegistry registry;
    private RouterMetrics metrics;
    private GenerationEngine engine;
    private GenerateRequests requests;

    @BeforeEach
    void load() {
        Parallel p = Parallel.shared();
        model = MoeModel.load(TinyRouterModel.dir(), new ModelOptions(16, CONTEXT, new CpuMatmulKernels(p), p, ExpertSelection.ALL, null));
        registry = new SimpleMeterRegistry();
    }

    @AfterEach
    void close() {
        model.close();
    }

    /** An engine over a cache of {@code tokens} positions, its thread not started. */
    private KvCache engine(int tokens) {
        return engine(model, model.newKvCache(tokens, 8), 8);
    }

    /** An engine of {@code model} over {@code cache}, running at most {@code maxSequences}, its thread not started. */
    private KvCache engine(MoeModel model, KvCache cache, int maxSequences) {
        metrics = new RouterMetrics(registry, List.of(), () -> engine.runningCount(), () -> engine.waitingCount(),
                () -> engine.freeKvTokens(), () -> engine.usedKvBlocks(), () -> engine.freeKvBlocks());
        int vocab = model.config().vocabSize();
        requests = new GenerateRequests(TinyRouterModel.MODEL_ID, vocab, model.maxContext(), model.config().eosTokenIds(),
                cache.blockSize(), cache.totalBlocks(), new TokenStream(metrics, vocab), new GrammarCache(TinyRouterModel.dir(), vocab));
        engine = new GenerationEngine(model, cache, maxSequences, 16, Duration.ofSeconds(1), 0.01,
                new RoutingStatistics(model.config(), registry), metrics);
        return cache;
    }

    private static int[] prompt(int length, int salt) {
        int[] p = new int[length];
        for (int j = 0; j < length; j++) p[j] = (j * 37 + salt * 11 + 1) % 381;
        return p;
    }

    /** A request as the gateway sends a chat without max_tokens: max_new_tokens is what the context leaves. */
    private static GenerateRequest request(int[] prompt, int maxNew, boolean seeded, long seed) {
        SamplingParameters.Builder sampling = SamplingParameters.newBuilder().setTemperature(0);
        if (seeded) sampling.setTemperature(1.1f).setTopP(0.95f).setSeed(seed).setFrequencyPenalty(0.3f).setRepetitionPenalty(1.2f);
        GenerateRequest.Builder b = GenerateRequest.newBuilder().setModelId(TinyRouterModel.MODEL_ID).setMaxNewTokens(maxNew)
                .setIgnoreEos(true).setSampling(sampling);
        for (int t : prompt) b.addPromptTokenIds(t);
        return b.build();
    }

    /** The same request run alone, to completion, on a cache that never runs out. */
    private int[] alone(GenerateRequest r) {
        return alone(model, r);
    }

    private static int[] alone(MoeModel model, GenerateRequest r) {
        SamplingParameters s = r.getSampling();
        SamplingParams sampling = new SamplingParams(s.getTemperature(), 0, s.hasTopP() ? s.getTopP() : 1f, 0f,
                s.hasRepetitionPenalty() ? s.getRepetitionPenalty() : 1f, s.getFrequencyPenalty(), 0f, s.hasSeed() ? s.getSeed() : null);
        int[] prompt = r.getPromptTokenIdsList().stream().mapToInt(Integer::intValue).toArray();
        return new Generator(model, model.newKvCache(1024, 1))
                .generate(new GenerationRequest(prompt, sampling, r.getMaxNewTokens(), new int[0])).outputTokens();
    }

    /** Opens and submits a request as the gRPC service does; its messages go to the returned subscriber. */
    private AssertSubscriber<GenerateResponse> submit(RouterSequence s) {
        Multi<GenerateResponse> messages = Multi.createFrom().emitter(e -> {
            s.emitter = e;
            e.onTermination(() -> engine.cancel(s));
            engine.submit(s);
        }, BackPressureStrategy.BUFFER);
        return messages.subscribe().withSubscriber(AssertSubscriber.create(Long.MAX_VALUE));
    }

    private static int[] tokens(AssertSubscriber<GenerateResponse> sub) {
        return sub.getItems().stream().flatMap(r -> r.getTokenIdsList().stream()).mapToInt(Integer::intValue).toArray();
    }

    private double preemptions() {
        return registry.get("moe.router.preemptions").counter().count();
    }

    @Test
    void defaultLengthChatsAreAdmittedByWhatTheyUseAndPreemptedRatherThanFailed() {
        KvCache cache = engine(256);
        assertEquals(16, cache.totalBlocks());
        List<GenerateRequest> chats = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            int[] p = prompt(10 + i, i);
            chats.add(request(p, CONTEXT - p.length, i % 2 == 1, 100 + i));
        }
        List<int[]> expected = new ArrayList<>();
        for (GenerateRequest r : chats) expected.add(alone(r));
        // Reserving prompt + max_new_tokens (the whole 96-token context, 6 blocks) admitted 16 / 6 = 2 of them.
        int upFront = cache.totalBlocks() / cache.blocksFor(CONTEXT);
        assertEquals(2, upFront);
        List<RouterSequence> sequences = new ArrayList<>();
        List<AssertSubscriber<GenerateResponse>> subs = new ArrayList<>();
        for (GenerateRequest r : chats) {
            RouterSequence s = requests.open(r, null);
            sequences.add(s);
            subs.add(submit(s));
        }
        engine.cycle();
        assertEquals(8, engine.runningCount(), "every prompt's blocks fit: all eight run, not " + upFront);
        assertEquals(0, engine.waitingCount());
        assertTrue(engine.usedKvBlocks() > 0 && engine.usedKvBlocks() <= 10, "blocks taken as used: " + engine.usedKvBlocks());
        for (int steps = 0; engine.cycle(); steps++) assertTrue(steps < 20_000, "the engine makes progress");
        assertTrue(preemptions() > 0, "eight sequences growing to 96 tokens outgrow 256 positions");
        for (int i = 0; i < 8; i++) {
            AssertSubscriber<GenerateResponse> sub = subs.get(i);
            assertNull(sub.getFailure(), "sequence " + i + " failed");
            sub.assertCompleted();
            assertArrayEquals(expected.get(i), tokens(sub), "sequence " + i + " (" + sequences.get(i).preemptions() + " preemptions)");
            assertEquals(expected.get(i).length, sub.getItems().size(), "one message per token, none sent twice");
            GenerateResponse last = sub.getLastItem();
            assertEquals(FinishReason.FINISH_REASON_LENGTH, last.getFinishReason());
            assertEquals(chats.get(i).getPromptTokenIdsCount(), last.getUsage().getPromptTokens(), "the prompt, not what was recomputed");
            assertEquals(CONTEXT - chats.get(i).getPromptTokenIdsCount(), last.getUsage().getCompletionTokens());
        }
        assertTrue(sequences.getLast().preemptions() > 0, "the youngest was preempted");
        assertEquals(0, sequences.getFirst().preemptions(), "the oldest never is");
        assertEquals(cache.totalBlocks(), engine.freeKvBlocks());
        assertEquals((long) cache.totalBlocks() * cache.blockSize(), engine.freeKvTokens());
        assertEquals(0, registry.get("moe.router.kv.cache.blocks").tag("state", "used").gauge().value());
    }

    @Test
    void aBf16CacheOfTheSameMemoryAdmitsTwiceTheSequences() {
        // The router sizes its cache from moe.router.batching.kv-cache-memory in the dtype's bytes: 64 float32 positions'
        // worth is 4 blocks in F32 and 8 in BF16, and twelve one-block prompts are admitted by blocks, 4 and 8 of them.
        long bytes = 64 * KvCache.bytesPerToken(model.config());
        Parallel p = Parallel.shared();
        try (MoeModel bf16 = MoeModel.load(TinyRouterModel.dir(), new ModelOptions(16, CONTEXT, new CpuMatmulKernels(p), p,
                ExpertSelection.ALL, null).withKvCacheDtype(KvCacheDtype.BF16))) {
            int[] admitted = new int[2];
            MoeModel[] models = {model, bf16};
            for (int d = 0; d < 2; d++) {
                KvCache cache = engine(models[d], ServedModel.newKvCache(models[d], bytes, 16), 16);
                assertEquals(d == 0 ? KvCacheDtype.F32 : KvCacheDtype.BF16, cache.dtype());
                assertEquals(4 << d, cache.totalBlocks());
                List<GenerateRequest> chats = new ArrayList<>();
                List<AssertSubscriber<GenerateResponse>> subs = new ArrayList<>();
                for (int i = 0; i < 12; i++) {
                    GenerateRequest r = request(prompt(10, i), 4, false, 0);
                    chats.add(r);
                    subs.add(submit(requests.open(r, null)));
                }
                engine.cycle();
                admitted[d] = engine.runningCount();
                for (int steps = 0; engine.cycle(); steps++) assertTrue(steps < 20_000, "the engine makes progress");
                for (int i = 0; i < 12; i++) {
                    assertNull(subs.get(i).getFailure(), "sequence " + i + " failed");
                    assertArrayEquals(alone(models[d], chats.get(i)), tokens(subs.get(i)), models[d].options().kvCacheDtype() + " sequence " + i);
                }
            }
            assertEquals(4, admitted[0]);
            assertEquals(8, admitted[1], "the same memory holds twice the BF16 blocks");
        }
    }

    @Test
    void aPreemptedSequenceWaitingForAdmissionCanBeCancelledOrExpire() {
        KvCache cache = engine(128);
        assertEquals(8, cache.totalBlocks());
        GenerateRequest a = request(prompt(10, 1), CONTEXT - 10, false, 0);
        int[] expectedA = alone(a);
        // The engine's clock stands still until the test moves it past B's deadline, so a slow machine cannot expire B early.
        long[] now = {System.nanoTime()};
        engine.clock = () -> now[0];
        GenerateRequest b = request(prompt(40, 2), CONTEXT - 40, true, 5).toBuilder()
                .setDeadlineUnixMillis(System.currentTimeMillis() + 1_000).build();
        GenerateRequest c = request(prompt(40, 3), CONTEXT - 40, false, 0);
        RouterSequence sa = requests.open(a, null);
        RouterSequence sb = requests.open(b, null);
        RouterSequence sc = requests.open(c, null);
        AssertSubscriber<GenerateResponse> subA = submit(sa);
        AssertSubscriber<GenerateResponse> subB = submit(sb);
        AssertSubscriber<GenerateResponse> subC = submit(sc);
        engine.cycle();
        assertEquals(3, engine.runningCount(), "1 + 3 + 3 prompt blocks of 8");
        // C, the youngest, is preempted first; cancelled before the engine admits it again, it is dropped.
        while (sc.preemptions() == 0) assertTrue(engine.cycle());
        assertEquals(io.moeserve.runtime.generate.Sequence.Phase.WAITING, sc.phase());
        assertEquals(1, engine.waitingCount());
        int sent = subC.getItems().size();
        subC.cancel();
        engine.cycle();
        assertEquals(0, engine.waitingCount(), "the cancelled sequence left the queue");
        assertEquals(sent, subC.getItems().size());
        // Then B; its deadline passes while it waits, and it fails with DEADLINE_EXCEEDED there.
        for (int steps = 0; sb.preemptions() == 0; steps++) {
            assertTrue(engine.cycle() && steps < 1_000, () -> "B is not preempted: A at " + sa.length() + ", B at " + sb.length()
                    + ", " + cache.freeBlocks() + " free blocks");
        }
        assertNull(subB.getFailure());
        assertEquals(io.moeserve.runtime.generate.Sequence.Phase.WAITING, sb.phase());
        now[0] = sb.deadlineNanos + 1;
        assertTrue(sb.expired(now[0]));
        engine.cycle();
        subB.assertFailedWith(StatusRuntimeException.class);
        assertEquals(Status.Code.DEADLINE_EXCEEDED, ((StatusRuntimeException) subB.getFailure()).getStatus().getCode());
        assertEquals(0, engine.waitingCount());
        for (int steps = 0; engine.cycle(); steps++) assertTrue(steps < 20_000, "the engine makes progress");
        subA.assertCompleted();
        assertArrayEquals(expectedA, tokens(subA), "the oldest goes on undisturbed");
        assertEquals(cache.totalBlocks(), engine.freeKvBlocks());
        assertEquals(0, engine.runningCount());
    }

    @Test
    void aSequenceThatCouldOutgrowTheWholeCacheIsRefused() {
        KvCache cache = engine(64);
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> requests.open(request(prompt(10, 0), 80, false, 0), null));
        assertEquals(Status.Code.OUT_OF_RANGE, e.getStatus().getCode());
        assertTrue(e.getStatus().getDescription().contains("may grow to 90 tokens (prompt + max_new_tokens) but the router's whole KV cache holds "
                + (long) cache.totalBlocks() * cache.blockSize()), e.getStatus().getDescription());
        requests.open(request(prompt(10, 0), 54, false, 0), null);
    }
}
