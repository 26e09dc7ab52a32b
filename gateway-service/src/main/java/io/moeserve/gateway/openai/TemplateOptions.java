package io.moeserve.gateway.openai;

/**
 * How the chat template is applied, as vLLM's chat and /tokenize requests say it.
 *
 * @param addGenerationPrompt  end with the assistant's header, so the model answers (default true)
 * @param continueFinalMessage render the final (assistant) message open-ended, so the model continues it; exclusive
 *                             with addGenerationPrompt, as in transformers' apply_chat_template
 */
public record TemplateOptions(boolean addGenerationPrompt, boolean continueFinalMessage) {

    public static final TemplateOptions DEFAULT = new TemplateOptions(true, false);

    static TemplateOptions parse(JsonFields f) {
        boolean continueFinal = f.bool("continue_final_message", false);
        // vLLM defaults add_generation_prompt to true; continuing a message needs it set false explicitly, as vLLM.
        boolean addGenerationPrompt = f.bool("add_generation_prompt", true);
        if (continueFinal && addGenerationPrompt) {
            throw OpenAiException.invalid("continue_final_message", "Cannot set both 'continue_final_message' and "
                    + "'add_generation_prompt' to true; set 'add_generation_prompt' to false to continue the final message.");
        }
        return new TemplateOptions(addGenerationPrompt, continueFinal);
    }
}
