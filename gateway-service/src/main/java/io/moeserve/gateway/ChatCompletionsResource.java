package io.moeserve.gateway;

import io.moeserve.gateway.generation.GenerationPlan;
import io.moeserve.gateway.generation.GenerationPlanner;
import io.moeserve.gateway.generation.GenerationRun;
import io.moeserve.gateway.openai.ChatCompletionRequest;
import io.moeserve.gateway.openai.GenerationOptions;
import io.moeserve.gateway.router.RouterClient;
import io.smallrye.common.annotation.Blocking;
import jakarta.inject.Inject;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import java.util.List;
import org.jboss.resteasy.reactive.RestMulti;

/** {@code POST /v1/chat/completions}: the checkpoint's chat template, then generation, streamed or whole. */
@Path("/v1/chat/completions")
public class ChatCompletionsResource {

    @Inject
    ServedModel model;

    @Inject
    GenerationPlanner planner;

    @Inject
    RouterClient router;

    @Inject
    GatewayMetrics metrics;

    /**
     * Blocking: rendering the template and tokenizing a long prompt take milliseconds of CPU, which must not
     * stall the event loop; the generation itself then streams without holding the worker thread.
     */
    @POST
    @Blocking
    public RestMulti<byte[]> create(byte[] body) {
        ChatCompletionRequest request = ChatCompletionRequest.parse(body);
        model.requireServed(request.model());
        GenerationOptions options = planner.chatOptions(request);
        int[] prompt = model.chatPrompt(planner.templateMessages(request.messages()), request.renderedTools(),
                request.templateKwargs(), request.template());
        GenerationPlan plan = planner.plan(GenerationOptions.Endpoint.CHAT, List.of(prompt), List.of("messages"),
                options, request.renderedTools() != null);
        return GenerationRun.respond(plan, model, router, metrics);
    }
}
