package io.moeserve.gateway.router;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The choice of router: least outstanding requests among the ready ones not yet tried, ties in turn. */
class RouterClientTest {
    private static RouterTarget target(String address, int inFlight) {
        RouterTarget t = new RouterTarget(address, null);
        t.inFlight.set(inFlight);
        return t;
    }

    @Test
    void theLeastLoadedRouterIsChosen() {
        List<RouterTarget> ts = List.of(target("a:1", 3), target("b:1", 1), target("c:1", 2));
        for (int turn = 0; turn < 6; turn++) assertEquals("b:1", RouterClient.pick(ts, Set.of(), turn).address);
    }

    @Test
    void tiesAreTakenInTurn() {
        List<RouterTarget> ts = List.of(target("a:1", 0), target("b:1", 0), target("c:1", 5));
        assertEquals("a:1", RouterClient.pick(ts, Set.of(), 0).address);
        assertEquals("b:1", RouterClient.pick(ts, Set.of(), 1).address);
        assertEquals("a:1", RouterClient.pick(ts, Set.of(), 2).address, "c is busier, so the turn passes on to a");
        assertEquals("a:1", RouterClient.pick(ts, Set.of(), -1).address, "a turn that wrapped around still picks");
    }

    @Test
    void aRouterNotReadyOrTriedIsSkippedAndWithNoneReadyTheRestAreTried() {
        RouterTarget a = target("a:1", 0);
        RouterTarget b = target("b:1", 4);
        List<RouterTarget> ts = List.of(a, b);
        a.failed("UNAVAILABLE: connection refused");
        assertEquals("b:1", RouterClient.pick(ts, Set.of(), 0).address, "a is idle but not ready");
        Set<String> tried = new HashSet<>(Set.of("b:1"));
        assertEquals("a:1", RouterClient.pick(ts, tried, 0).address, "no ready router left: a is tried anyway");
        tried.add("a:1");
        assertNull(RouterClient.pick(ts, tried, 0), "every router tried");
        a.answered();
        assertEquals("a:1", RouterClient.pick(ts, Set.of(), 1).address, "ready again once a probe answers");
        assertNull(RouterClient.pick(List.of(), Set.of(), 0));
    }

    @Test
    void targetsAreHostAndPort() {
        assertEquals(new RouterClient.HostPort("router.ns.svc", 9000), RouterClient.HostPort.parse("router.ns.svc:9000"));
        assertEquals(new RouterClient.HostPort("::1", 9081), RouterClient.HostPort.parse("[::1]:9081"));
        assertThrows(IllegalArgumentException.class, () -> RouterClient.HostPort.parse("router"));
        assertThrows(IllegalArgumentException.class, () -> RouterClient.HostPort.parse("router:http"));
    }
}
