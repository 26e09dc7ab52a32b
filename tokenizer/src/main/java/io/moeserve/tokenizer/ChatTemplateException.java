package io.moeserve.tokenizer;

/** A chat template that cannot be compiled or rendered exactly as Python's jinja2 would; never partial output. */
public class ChatTemplateException extends RuntimeException {

    public ChatTemplateException(String message) {
        super(message);
    }

    public ChatTemplateException(String message, Throwable cause) {
        super(message, cause);
    }
}
