package io.moeserve.gateway;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import io.moeserve.gateway.router.RouterClient;
import io.moeserve.proto.router.v1.ModelDescription;
import io.smallrye.mutiny.Uni;
import jakarta.inject.Inject;
import jakarta.ws.rs.GET;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.PathParam;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;
import java.util.List;

/**
 * {@code GET /v1/models} and {@code GET /v1/models/{model}}: the one served model. The created time comes from
 * the router's DescribeModel; while the router cannot be reached, from the checkpoint's config.json, so that the
 * listing still answers.
 */
@Path("/v1/models")
@Produces(MediaType.APPLICATION_JSON)
public class ModelsResource {

    @Inject
    ServedModel model;

    @Inject
    RouterClient router;

    /** An OpenAI model object; max_model_len is vLLM's addition. */
    @JsonInclude(JsonInclude.Include.NON_NULL)
    public record ModelCard(String id, String object, long created, @JsonProperty("owned_by") String ownedBy,
                            @JsonProperty("max_model_len") Integer maxModelLen) {}

    public record ModelList(String object, List<ModelCard> data) {}

    @GET
    public Uni<ModelList> list() {
        return card().map(card -> new ModelList("list", List.of(card)));
    }

    /** Model ids may contain slashes (org/name). */
    @GET
    @Path("{model: .+}")
    public Uni<ModelCard> get(@PathParam("model") String id) {
        model.requireServed(id);
        return card();
    }

    private Uni<ModelCard> card() {
        return router.describe()
                .map(d -> new ModelCard(model.id(), "model", created(d), "moe-serve",
                        d.getMaxContext() > 0 ? d.getMaxContext() : null))
                .onFailure().recoverWithItem(() -> new ModelCard(model.id(), "model", model.createdFallback(),
                        "moe-serve", null));
    }

    private long created(ModelDescription d) {
        return d.getCreatedUnixSeconds() > 0 ? d.getCreatedUnixSeconds() : model.createdFallback();
    }
}
