package io.moeserve.gateway.generation;

import io.moeserve.tokenizer.HfTokenizer;

/** How chat completions' output is read, decided once at startup; makes one parser per choice. */
interface OutputFormat {

    /**
     * @param promptIds the choice's prompt, for formats whose template may open a block the output continues
     */
    ChatOutputParser parser(ChatOutputParser.Sink sink, HfTokenizer tokenizer, int[] promptIds);

    /** Tokens that end the turn whatever generation_config.json lists (harmony's {@code <|return|>}, {@code <|call|>}). */
    default int[] turnEnds() {
        return new int[0];
    }

    /** Whether output is parsed only when the request sent tools (formats whose calls look like plain JSON). */
    default boolean onlyWithTools() {
        return false;
    }
}
