package io.moeserve.tokenizer.synthetic;

import io.moeserve.tokenizer.ByteLevelAlphabet;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A plain, deterministic byte-level BPE trainer: split text as GPT-2 does, spell each piece in
 * {@link ByteLevelAlphabet} characters, then repeatedly merge the most frequent adjacent pair (ties broken by the
 * pair's text) until no pair occurs twice or a merge limit is reached. Small and slow by design: every merge recounts
 * all pairs, which suits the embedded corpus (a few kilobytes) and, with a limit of a few thousand merges, a
 * megabyte of real text (the evaluation model's tokenizer, tools/eval-model) in about a minute.
 */
final class BpeTrainer {

    /** GPT-2's pre-tokenizer split, which the HF ByteLevel pre-tokenizer applies when use_regex is true. */
    static final Pattern GPT2_SPLIT = Pattern.compile(
            "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
            Pattern.UNICODE_CHARACTER_CLASS);

    /** One learned merge: the two parts, in the order they were learned. */
    record Merge(String left, String right) {
        String result() {
            return left + right;
        }
    }

    private BpeTrainer() {
    }

    /** All merges the text supports, most frequent first. */
    static List<Merge> train(String text) {
        return train(text, Integer.MAX_VALUE);
    }

    /** The first {@code maxMerges} merges the text supports (fewer if it runs out of pairs), most frequent first. */
    static List<Merge> train(String text, int maxMerges) {
        // Words in sorted order so that every run visits them identically.
        Map<String, Integer> counts = new TreeMap<>();
        Matcher m = GPT2_SPLIT.matcher(text);
        while (m.find()) {
            counts.merge(ByteLevelAlphabet.encode(m.group().getBytes(StandardCharsets.UTF_8)), 1, Integer::sum);
        }
        List<List<String>> words = new ArrayList<>();
        List<Integer> frequencies = new ArrayList<>();
        counts.forEach((word, count) -> {
            List<String> symbols = new ArrayList<>();
            word.chars().forEach(c -> symbols.add(String.valueOf((char) c)));
            words.add(symbols);
            frequencies.add(count);
        });
        List<Merge> merges = new ArrayList<>();
        while (merges.size() < maxMerges) {
            Map<Merge, Integer> pairs = new HashMap<>();
            for (int w = 0; w < words.size(); w++) {
                List<String> symbols = words.get(w);
                for (int i = 0; i + 1 < symbols.size(); i++) {
                    pairs.merge(new Merge(symbols.get(i), symbols.get(i + 1)), frequencies.get(w), Integer::sum);
                }
            }
            Merge best = null;
            int bestCount = 1;
            for (Map.Entry<Merge, Integer> e : pairs.entrySet()) {
                int c = e.getValue();
                if (c > bestCount || (c == bestCount && best != null && isBefore(e.getKey(), best))) {
                    best = e.getKey();
                    bestCount = c;
                }
            }
            if (best == null) return merges;
            merges.add(best);
            for (List<String> symbols : words) apply(symbols, best);
        }
        return merges;
    }

    private static boolean isBefore(Merge a, Merge b) {
        int c = a.left.compareTo(b.left);
        return c != 0 ? c < 0 : a.right.compareTo(b.right) < 0;
    }

    private static void apply(List<String> symbols, Merge merge) {
        for (int i = 0; i + 1 < symbols.size(); i++) {
            if (symbols.get(i).equals(merge.left) && symbols.get(i + 1).equals(merge.right)) {
                symbols.set(i, merge.result());
                symbols.remove(i + 1);
            }
        }
    }
}
