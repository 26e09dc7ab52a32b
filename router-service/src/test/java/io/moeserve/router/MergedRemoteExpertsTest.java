package io.moeserve.router;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.moeserve.proto.router.v1.GenerateResponse;
import io.moeserve.proto.router.v1.RouterServiceGrpc;
import io.moeserve.runtime.expert.ExpertSelection;
import io.moeserve.runtime.generate.GenerationRequest;
import io.moeserve.runtime.generate.Generator;
import io.moeserve.runtime.generate.SamplingParams;
import io.moeserve.runtime.kernel.CpuMatmulKernels;
import io.moeserve.runtime.kernel.Parallel;
import io.moeserve.runtime.model.ModelOptions;
import io.moeserve.runtime.model.MoeModel;
import io.moeserve.runtime.model.RoutingObserver;
import io.quarkus.test.common.QuarkusTestResource;
import io.quarkus.test.junit.QuarkusTest;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A merged checkpoint served by the router and two expert pods: the output is the runtime's in-process output on
 * the same checkpoint, both pods compute (each merged expert is hosted once, by one of them), and the routing
 * statistics count the 6 merged experts, which is what the placement planner plans.
 */
@QuarkusTest
@QuarkusTestResource(value = MergedRemoteExperts.class, restrictToAnnotatedClass = true)
class MergedRemoteExpertsTest {
    private static final int[] PROMPT = RouterServiceTest.PROMPT;
    private static ManagedChannel channel;
    private static RouterServiceGrpc.RouterServiceBlockingStub stub;

    @BeforeAll
    static void connect() {
        channel = ManagedChannelBuilder.forAddress("localhost", 19181).usePlaintext().build();
        stub = RouterServiceGrpc.newBlockingStub(channel);
    }

    @AfterAll
    static void close() throws InterruptedException {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    @Test
    void aMergedCheckpointOverTwoPodsIsTheInProcessOutput() throws InterruptedException {
        for (int i = 0; i < 300 && !given().get("/q/health/ready").asString().contains("1 of 1 pods ready"); i++) Thread.sleep(50);
        List<GenerateResponse> out = new ArrayList<>();
        stub.withDeadlineAfter(60, TimeUnit.SECONDS).generate(RouterServiceTest.greedy(PROMPT, 12)).forEachRemaining(out::add);
        assertArrayEquals(inProcess(PROMPT, 12), RouterServiceTest.tokens(out));
        assertTrue(MergedRemoteExperts.g0.calls.get() > 0 && MergedRemoteExperts.g1.calls.get() > 0, "both pods computed");
        given().get("/v1/routing-stats").then().statusCode(200).body("num_experts", equalTo(MergedRemoteExperts.MERGED));
    }

    private static int[] inProcess(int[] prompt, int maxNew) {
        Parallel p = Parallel.shared();
        ModelOptions o = new ModelOptions(64, 256, new CpuMatmulKernels(p), p, ExpertSelection.ALL, null);
        try (MoeModel m = MoeModel.load(MergedRemoteExperts.dir(), o)) {
            return new Generator(m, m.newKvCache(1024, 1)).generate(List.of(new GenerationRequest(prompt, SamplingParams.GREEDY, maxNew,
                    new int[0])), (s, t) -> { }, RoutingObserver.NONE, null).getFirst().outputTokens();
        }
    }
}
