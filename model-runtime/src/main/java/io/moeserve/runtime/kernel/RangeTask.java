package io.moeserve.runtime.kernel;

/** A piece of work over the half-open index range [from, to), as {@link Parallel#forRange} hands it out. */
@FunctionalInterface
public interface RangeTask {

    /** Processes indices {@code from <= i < to}; called with {@code from < to}. */
    void run(int from, int to);
}
