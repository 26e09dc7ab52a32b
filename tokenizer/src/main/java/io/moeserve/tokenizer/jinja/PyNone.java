package io.moeserve.tokenizer.jinja;

import com.hubspot.jinjava.util.HasObjectTruthValue;

/**
 * Python's {@code None} inside a rendered chat template.
 *
 * <p>Jinjava has only {@code null}, which it treats as "undefined". Jinja2 tells the two apart: a message whose
 * {@code content} is None has {@code content is defined} true and prints {@code None}, while a missing key is
 * undefined and prints nothing. Templates depend on this (DeepSeek-V3 tests {@code message['content'] is none};
 * Llama 3 prints {@code message['content'] | trim}, which is the text "None" for a tool-call turn).
 */
final class PyNone implements HasObjectTruthValue {

    static final PyNone INSTANCE = new PyNone();

    private PyNone() {
    }

    @Override
    public boolean getObjectTruthValue() {
        return false;
    }

    @Override
    public String toString() {
        return "None";
    }
}
