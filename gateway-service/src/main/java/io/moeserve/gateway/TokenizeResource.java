package io.moeserve.gateway;

import com.fasterxml.jackson.annotation.JsonProperty;
import io.moeserve.gateway.generation.GenerationPlanner;
import io.moeserve.gateway.openai.ChatCompletionRequest;
import io.moeserve.gateway.openai.OpenAiException;
import io.moeserve.gateway.openai.TokenizeRequest;
import io.moeserve.gateway.router.RouterClient;
import io.smallrye.common.annotation.Blocking;
import jakarta.inject.Inject;
import jakarta.ws.rs.POST;
import jakarta.ws.rs.Path;
import jakarta.ws.rs.Produces;
import jakarta.ws.rs.core.MediaType;

/**
 * vLLM's {@code POST /tokenize} and {@code POST /detokenize}: the served tokenizer and chat template, exactly as
 * completions and chat encode a prompt, so that clients can count tokens and build token-id prompts.
 */
@Path("/")
@Produces(MediaType.APPLICATION_JSON)
public class TokenizeResource {

    @Inject
    ServedModel model;

    @Inject
    GenerationPlanner planner;

    @Inject
    RouterClient router;

    /** @param maxModelLen the model's context, as completions check it */
    public record Tokens(int count, @JsonProperty("max_model_len") int maxModelLen, int[] tokens) {}

    public record Text(String prompt) {}

    /** Blocking: encoding a long prompt takes CPU time the event loop must not spend. */
    @POST
    @Path("tokenize")
    @Blocking
    public Tokens tokenize(byte[] body) {
        TokenizeRequest request = TokenizeRequest.parse(body);
        model.requireServed(request.model());
        int[] ids;
        if (request.chat() != null) {
            ChatCompletionRequest chat = request.chat();
            String text = model.chatText(planner.templateMessages(chat.messages()), chat.tools(), chat.templateKwargs(),
                    chat.template());
            ids = model.tokenizer().encode(text, request.addSpecialTokens());
        } else {
            ids = model.tokenizer().encode(request.prompt(), request.addSpecialTokens());
        }
        return new Tokens(ids.length, planner.contextLength(), ids);
    }

    @POST
    @Path("detokenize")
    @Blocking
    public Text detokenize(byte[] body) {
        TokenizeRequest.Detokenize request = TokenizeRequest.Detokenize.parse(body);
        model.requireServed(request.model());
        int vocab = model.tokenizer().vocabSize();
        for (int i = 0; i < request.tokens().length; i++) {
            if (request.tokens()[i] >= vocab) {
                throw OpenAiException.invalid("tokens[" + i + "]", "Token id " + request.tokens()[i]
                        + " is outside the tokenizer's vocabulary of " + vocab + ".");
            }
        }
        // vLLM decodes with skip_special_tokens=False: the text shows what the ids are.
        return new Text(model.tokenizer().decode(request.tokens(), false));
    }
}
