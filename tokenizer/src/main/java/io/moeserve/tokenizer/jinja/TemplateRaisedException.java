package io.moeserve.tokenizer.jinja;

/**
 * Thrown by the template function {@code raise_exception(message)}; Jinjava records it as a render error and
 * {@link JinjaTemplate} turns it back into a {@link TemplateException} carrying the template's own message.
 */
final class TemplateRaisedException extends RuntimeException {

    TemplateRaisedException(String message) {
        super(message);
    }
}
