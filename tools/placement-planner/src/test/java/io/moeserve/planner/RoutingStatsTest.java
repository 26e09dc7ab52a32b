package io.moeserve.planner;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Loads from routing-statistics snapshots, of one router and of several. */
class RoutingStatsTest {
    /** One MoE layer (layer 1 of 2) of two experts. */
    private static RoutingStats snapshot(String router, long since, long at, long e0, long e1) throws Exception {
        String json = """
                {"schema":"moe-serve.routing-stats.v1","model":"m",%s"routing_table_version":1,"num_layers":2,
                 "num_experts":2,"moe_layers":[1],"since_unix_millis":%d,"at_unix_millis":%d,"total_tokens":1,
                 "tokens":[[],[%d,%d]]}""".formatted(router == null ? "" : "\"router\":\"" + router + "\",", since, at, e0, e1);
        return RoutingStats.parse(new ObjectMapper().readTree(json), "test");
    }

    @Test
    void severalRoutersLoadsAreSummedEachFromItsOwnSnapshots() throws Exception {
        // Router a since t=1 s: 100 and 200 pairs by t=11 s, then 300 and 200 by t=21 s (20/s and 0/s since).
        // Router b since t=5 s: 60 and 30 pairs by t=11 s (10/s and 5/s).
        List<RoutingStats> s = List.of(snapshot("a:9000", 1_000, 11_000, 100, 200), snapshot("b:9000", 5_000, 11_000, 60, 30),
                snapshot("a:9000", 1_000, 21_000, 300, 200));
        double[][] load = RoutingStats.load(s, 0);
        assertEquals(20 + 10, load[0][0], 1e-9);
        assertEquals(0 + 5, load[0][1], 1e-9);
    }

    @Test
    void snapshotsWithoutARouterAreOneRoutersAsBefore() throws Exception {
        List<RoutingStats> s = List.of(snapshot(null, 1_000, 11_000, 100, 200), snapshot(null, 1_000, 21_000, 300, 200));
        double[][] load = RoutingStats.load(s, 0);
        assertEquals(20, load[0][0], 1e-9, "the rate between the two, not a sum of the two");
        assertEquals(0, load[0][1], 1e-9);
        assertEquals(10, RoutingStats.load(List.of(s.getFirst()), 0)[0][0], 1e-9, "one snapshot: its rate since the start");
    }
}
