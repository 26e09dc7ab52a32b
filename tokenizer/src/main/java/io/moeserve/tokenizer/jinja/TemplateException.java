package io.moeserve.tokenizer.jinja;

/**
 * A template that cannot be compiled or rendered exactly as Python's jinja2 would, or one whose
 * {@code raise_exception} was called (the message is then the template's own).
 */
public class TemplateException extends RuntimeException {

    public TemplateException(String message) {
        super(message);
    }

    public TemplateException(String message, Throwable cause) {
        super(message, cause);
    }
}
