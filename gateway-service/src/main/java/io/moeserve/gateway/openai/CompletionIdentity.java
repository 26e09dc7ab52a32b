package io.moeserve.gateway.openai;

/**
 * What names one completion in every object written for it, the whole body or each chunk: OpenAI's {@code id},
 * {@code created} and {@code model}; the endpoint decides the {@code object} type and the shape of a choice.
 */
public record CompletionIdentity(String id, long created, String model, GenerationOptions.Endpoint endpoint) {

    public boolean chat() {
        return endpoint == GenerationOptions.Endpoint.CHAT;
    }
}
