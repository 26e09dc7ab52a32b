package io.moeserve.runtime.expert;

/** Which routed experts a process loads: all of them, none (a router whose experts live in pods), or a subset. */
@FunctionalInterface
public interface ExpertSelection {
    boolean hosts(int layer, int expert);

    ExpertSelection ALL = (layer, expert) -> true;
    ExpertSelection NONE = (layer, expert) -> false;
}
