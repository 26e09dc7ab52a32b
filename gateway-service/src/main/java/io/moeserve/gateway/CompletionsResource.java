package io.moeserve.gateway;

import io.moeserve.gateway.generation.GenerationPlan;
import io.moeserve.gateway.generation.GenerationPlanner;
import io.moeserve.gateway.generation.GenerationRun;
import io.moeserve.gateway.openai.CompletionRequest;
import io.moeserve.gateway.openai.GenerationOptions;
import io.moeserve.gateway.router.RouterClient;
import io.smallrye.common.annotation.Blocking;
import jakarta.inject.Inject;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import java.util.ArrayList;
import java.util.List;
import org.jboss.resteasy.reactive.RestMulti;

/** {@code POST /v1/completions}: text (or token-id) prompts, n choices each, streamed or whole. */
@Path("/v1/completions")
public class CompletionsResource {

    @Inject
    ServedModel model;

    @Inject
    GenerationPlanner planner;

    @Inject
    RouterClient router;

    @Inject
    GatewayMetrics metrics;

    /** Blocking for the same reason as chat: tokenizing happens here. */
    @POST
    @Blocking
    public RestMulti<byte[]> create(byte[] body) {
        CompletionRequest request = CompletionRequest.parse(body);
        model.requireServed(request.model());
        List<int[]> prompts = new ArrayList<>(request.prompts().size());
        List<String> params = new ArrayList<>(request.prompts().size());
        for (int i = 0; i < request.prompts().size(); i++) {
            CompletionRequest.Prompt p = request.prompts().get(i);
            prompts.add(p.tokenIds() != null ? p.tokenIds() : model.textPrompt(p.text()));
            params.add(request.prompts().size() == 1 ? "prompt" : "prompt[" + i + "]");
        }
        GenerationPlan plan = planner.plan(GenerationOptions.Endpoint.COMPLETION, prompts, params, request.options());
        return GenerationRun.respond(plan, model, router, metrics, request.echo() ? echo(request) : null);
    }

    /**
     * echo's texts: a text prompt as the client sent it, token ids decoded without special tokens (vLLM's default
     * skip_special_tokens), so the BOS a text prompt is encoded with is not echoed.
     */
    private List<String> echo(CompletionRequest request) {
        List<String> texts = new ArrayList<>(request.prompts().size());
        for (CompletionRequest.Prompt p : request.prompts()) {
            texts.add(p.text() != null ? p.text() : model.tokenizer().decode(p.tokenIds(), true));
        }
        return texts;
    }
}
