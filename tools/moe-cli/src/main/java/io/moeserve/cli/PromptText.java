package io.moeserve.cli;

import io.moeserve.tokenizer.ChatMessage;
import io.moeserve.tokenizer.ChatTemplate;
import io.moeserve.tokenizer.HfTokenizer;
import io.moeserve.tokenizer.IncrementalDetokenizer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Text in and out for the CLI: the checkpoint's tokenizer, its chat template, and streaming detokenization. */
final class PromptText implements AutoCloseable {
    private final HfTokenizer tokenizer;
    private int[] promptIds = new int[0];

    private PromptText(HfTokenizer tokenizer) {
        this.tokenizer = tokenizer;
    }

    static PromptText load(Path dir) throws IOException {
        return new PromptText(HfTokenizer.load(dir));
    }

    /** Token ids of the prompt: the raw text, or with --chat the chat template's rendering of it as a user turn. */
    int[] encode(String text, boolean chat, String system) {
        String input = text;
        if (chat) {
            ChatTemplate template = tokenizer.chatTemplate().orElseThrow(() ->
                    new IllegalArgumentException("the checkpoint has no chat template (tokenizer_config.json or chat_template.jinja)"));
            List<ChatMessage> messages = new ArrayList<>();
            if (system != null) messages.add(ChatMessage.system(system));
            messages.add(ChatMessage.user(text));
            input = template.render(messages, true);
        }
        promptIds = tokenizer.encode(input);
        return promptIds;
    }

    private IncrementalDetokenizer detokenizer;

    /** The text a newly generated token completes (never half a UTF-8 character). */
    String stream(int token) {
        if (detokenizer == null) detokenizer = new IncrementalDetokenizer(tokenizer, true, promptIds);
        return detokenizer.add(token);
    }

    /** Whatever text is still held back at the end of generation. */
    String flushStream() {
        return detokenizer == null ? "" : detokenizer.flush();
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
