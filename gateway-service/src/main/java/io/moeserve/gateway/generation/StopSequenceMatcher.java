package io.moeserve.gateway.generation;

import java.util.List;

/**
 * Cuts generated text at the first occurrence of any stop string, streaming: text is released as soon as it can
 * no longer be part of a stop string. One instance per choice; not thread-safe.
 */
final class StopSequenceMatcher {
    /*
     * The problem: tokens do not line up with stop strings. With stop "\n\nUser:" a model may emit "\n", "\n",
     * "User", ":" as four tokens, or "Hello\n\nUs" + "er:". Once text is sent to the client it cannot be taken
     * back, so text that might be the start of a stop string must wait until the next tokens decide.
     *
     * What "the first stop string" means: generation ends the moment a stop string is complete, so the one that
     * counts is the one that ends first in the output; of several ending at the same character, the one that
     * starts first (the longest). A longer stop string that began earlier but is not complete yet loses: the
     * model would never have generated the rest of it. Defined this way the answer depends only on the text, not
     * on how the tokens split it (tested by feeding random texts in random pieces).
     *
     * The rule: after appending new text to the pending buffer, (1) if any stop string occurs in it, the answer
     * is the text before the occurrence that ends first (ties: that starts first), and generation ends;
     * (2) otherwise, hold back the longest suffix of the buffer that is a proper prefix of some stop string, and
     * release the rest. Nothing else is held: text that cannot start a stop string goes out at once, so streaming
     * latency only grows while a stop string is really being spelled out.
     *
     * Why this is exact: suppose the stop string that ends first, s, started in text released earlier, at
     * position p. When that text was released, the buffer's suffix from p was a proper prefix of s (s was not
     * complete yet, or rule 1 would have fired), so rule 2 would have held it back: contradiction. Non-streaming
     * requests run through the same matcher, so both modes return the same text.
     *
     * Cost: the buffer holds at most (longest stop - 1) characters plus one delta, so each append scans a few
     * dozen characters per stop string; no allocation besides the released substring.
     */

    private final String[] stops;
    private final StringBuilder pending = new StringBuilder();
    private boolean matched;

    StopSequenceMatcher(List<String> stops) {
        this.stops = stops.toArray(new String[0]);
    }

    boolean matched() {
        return matched;
    }

    /** Appends text; returns the text that can be released now (the text before the stop string, once one ends). */
    String push(String text) {
        if (matched) return "";
        if (stops.length == 0) return text;
        pending.append(text);
        int cut = -1;
        int cutEnd = Integer.MAX_VALUE;
        for (String s : stops) {
            int at = pending.indexOf(s);
            if (at < 0) continue;
            int end = at + s.length();
            if (end < cutEnd || (end == cutEnd && at < cut)) {
                cut = at;
                cutEnd = end;
            }
        }
        if (cut >= 0) {
            matched = true;
            String out = pending.substring(0, cut);
            pending.setLength(0);
            return out;
        }
        int hold = 0;
        for (String s : stops) {
            for (int k = Math.min(s.length() - 1, pending.length()); k > hold; k--) {
                if (endsWithPrefix(s, k)) {
                    hold = k;
                    break;
                }
            }
        }
        int release = pending.length() - hold;
        if (release == 0) return "";
        String out = pending.substring(0, release);
        pending.delete(0, release);
        return out;
    }

    /** The end of generation: what was held back cannot become a stop string any more. */
    String flush() {
        if (matched) return "";
        String out = pending.toString();
        pending.setLength(0);
        return out;
    }

    /** Whether the buffer ends with the first k characters of s. */
    private boolean endsWithPrefix(String s, int k) {
        int offset = pending.length() - k;
        for (int i = 0; i < k; i++) {
            if (pending.charAt(offset + i) != s.charAt(i)) return false;
        }
        return true;
    }
}
