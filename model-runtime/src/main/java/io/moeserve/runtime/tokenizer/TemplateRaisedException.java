package io.moeserve.runtime.tokenizer;

/**
 * Thrown by the template function {@code raise_exception(message)}; Jinjava records it as a render error and
 * {@link ChatTemplate} turns it back into a {@link ChatTemplateException} carrying the template's own message.
 */
final class TemplateRaisedException extends RuntimeException {

    TemplateRaisedException(String message) {
        super(message);
    }
}
