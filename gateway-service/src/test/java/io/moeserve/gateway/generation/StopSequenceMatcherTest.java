package io.moeserve.gateway.generation;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class StopSequenceMatcherTest {

    @Test
    void aStopStringSpanningPiecesCutsExactlyAndHoldsBackOnlyItsPossibleStart() {
        StopSequenceMatcher m = new StopSequenceMatcher(List.of("\n\nUser:"));
        assertEquals("Hello", m.push("Hello"));
        assertEquals("", m.push("\n"), "a newline could start the stop string");
        assertEquals("", m.push("\nUs"));
        assertFalse(m.matched());
        assertEquals("", m.push("er: more"));
        assertTrue(m.matched());
        assertEquals("", m.push("ignored"));
        assertEquals("", m.flush());
    }

    @Test
    void heldBackTextIsReleasedWhenItStopsLookingLikeAStopString() {
        StopSequenceMatcher m = new StopSequenceMatcher(List.of("\n\nUser:"));
        assertEquals("a", m.push("a\n\nU"));
        assertEquals("\n\nUx", m.push("x"));
        assertEquals("", m.push("\n"));
        assertEquals("\n", m.flush(), "at the end nothing can complete the stop string any more");
    }

    @Test
    void theStopStringThatEndsFirstWins() {
        StopSequenceMatcher m = new StopSequenceMatcher(List.of("world", "lo w", "xyz"));
        assertEquals("Hel", m.push("Hello world"));
        assertTrue(m.matched());
        // ":\na" began first, but "\n" was complete before it: generation would have stopped there.
        StopSequenceMatcher n = new StopSequenceMatcher(List.of(":\na", "\n"));
        assertEquals("x:", n.push("x:\na"));
        StopSequenceMatcher o = new StopSequenceMatcher(List.of("b", "abc", "ab"));
        assertEquals("x", o.push("xabc"), "of those ending together, the one that starts first");
    }

    @Test
    void textThatCannotStartAStopStringIsNotHeld() {
        StopSequenceMatcher m = new StopSequenceMatcher(List.of("STOP"));
        assertEquals("abc ", m.push("abc "));
        assertEquals("ST", m.push("STx").substring(0, 2));
    }

    @Test
    void withoutStopStringsEverythingPassesThrough() {
        StopSequenceMatcher m = new StopSequenceMatcher(List.of());
        assertEquals("abc", m.push("abc"));
        assertEquals("", m.flush());
    }

    /** Any split of any text gives the text before the stop string that ends first, as a scan of the whole does. */
    @Test
    void streamingEqualsCuttingTheWholeText() {
        Random random = new Random(42);
        String alphabet = "ab\n:";
        for (int round = 0; round < 5000; round++) {
            List<String> stops = new ArrayList<>();
            for (int s = 0, count = 1 + random.nextInt(3); s < count; s++) {
                stops.add(randomText(random, alphabet, 1 + random.nextInt(4)));
            }
            String text = randomText(random, alphabet, random.nextInt(30));
            int cut = text.length();
            int cutEnd = Integer.MAX_VALUE;
            for (String s : stops) {
                int at = text.indexOf(s);
                if (at >= 0 && (at + s.length() < cutEnd || at + s.length() == cutEnd && at < cut)) {
                    cut = at;
                    cutEnd = at + s.length();
                }
            }
            String expected = text.substring(0, cut);
            StopSequenceMatcher m = new StopSequenceMatcher(stops);
            StringBuilder out = new StringBuilder();
            int i = 0;
            while (i < text.length() && !m.matched()) {
                int len = 1 + random.nextInt(Math.min(5, text.length() - i));
                out.append(m.push(text.substring(i, i + len)));
                // What went out is never more than the final answer.
                assertTrue(expected.startsWith(out.toString()), () -> "released too early: " + out + " of " + expected
                        + " text " + text.replace("\n", "\\n") + " stops " + stops.toString().replace("\n", "\\n"));
                i += len;
            }
            out.append(m.flush());
            assertEquals(expected, out.toString(), "text " + text + " stops " + stops);
            assertEquals(cut < text.length(), m.matched());
        }
    }

    private static String randomText(Random random, String alphabet, int length) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < length; i++) b.append(alphabet.charAt(random.nextInt(alphabet.length())));
        return b.toString();
    }
}
