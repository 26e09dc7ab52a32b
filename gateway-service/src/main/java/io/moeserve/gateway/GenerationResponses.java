package io.moeserve.gateway;

import io.smallrye.mutiny.Multi;
import java.util.List;
import java.util.Map;
import org.jboss.resteasy.reactive.RestMulti;

/**
 * The HTTP side of a {@link GenerationRun}: its bytes as a RestMulti, whose status and headers are decided only
 * when the run has begun (or failed, which goes through the exception mappers instead).
 *
 * <p>Why raw bytes: RESTEasy's own SSE support writes {@code data:} without the space OpenAI sends and has no
 * {@code [DONE]}; with no {@code @Produces}, a RestMulti of byte arrays is written as it is, chunk by chunk.
 */
final class GenerationResponses {
    private GenerationResponses() {}

    static RestMulti<byte[]> of(GenerationRun run, GenerationPlan plan) {
        if (plan.options().stream()) {
            Map<String, List<String>> headers = Map.of(
                    "Content-Type", List.of("text/event-stream"),
                    "Cache-Control", List.of("no-cache"),
                    // nginx and similar proxies otherwise buffer the stream
                    "X-Accel-Buffering", List.of("no"),
                    "X-Request-Id", List.of(plan.id()));
            return RestMulti.fromUniResponse(run.start(), started -> run.events(), started -> headers,
                    started -> 200);
        }
        Map<String, List<String>> headers = Map.of(
                "Content-Type", List.of("application/json"),
                "X-Request-Id", List.of(plan.id()));
        return RestMulti.fromUniResponse(run.result(), body -> Multi.createFrom().item(body), body -> headers,
                body -> 200);
    }
}
