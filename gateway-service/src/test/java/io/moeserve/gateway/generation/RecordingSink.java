package io.moeserve.gateway.generation;

import java.util.ArrayList;
import java.util.List;

/** What a parser's sink saw, joined: fragments of one kind concatenated, tool calls as name(arguments). */
final class RecordingSink implements ChatOutputParser.Sink {
    final StringBuilder reasoning = new StringBuilder();
    final StringBuilder content = new StringBuilder();
    final List<String> calls = new ArrayList<>();
    final List<StringBuilder> arguments = new ArrayList<>();

    @Override
    public void reasoning(String text) {
        reasoning.append(text);
    }

    @Override
    public void content(String text) {
        content.append(text);
    }

    @Override
    public void toolCall(String name) {
        calls.add(name);
        arguments.add(new StringBuilder());
    }

    @Override
    public void arguments(String text) {
        arguments.getLast().append(text);
    }

    String toolCalls() {
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < calls.size(); i++) out.append(calls.get(i)).append('(').append(arguments.get(i)).append(')');
        return out.toString();
    }
}
