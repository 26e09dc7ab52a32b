package io.moeserve.gateway.router;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.proto.router.v1.GenerateRequest;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
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

    private static long affinity(int first) {
        GenerateRequest.Builder b = GenerateRequest.newBuilder();
        for (int i = 0; i < 40; i++) b.addPromptTokenIds(i < 32 ? first + i : 7 * i);
        return RouterClient.affinity(b.build(), 32);
    }

    /** Prefix affinity: the same first tokens prefer the same router, within the slack over the least loaded one. */
    @Test
    void aPromptPrefersTheRouterItsPrefixHashesToWhileThatRouterIsNotTooBusy() {
        List<RouterTarget> ts = List.of(target("a:1", 0), target("b:1", 0), target("c:1", 0));
        long key = affinity(100);
        RouterTarget preferred = RouterClient.pick(ts, Set.of(), 0, key, 4);
        for (int turn = 1; turn < 6; turn++) assertEquals(preferred, RouterClient.pick(ts, Set.of(), turn, key, 4), "every turn");
        GenerateRequest.Builder other = GenerateRequest.newBuilder();
        for (int i = 0; i < 40; i++) other.addPromptTokenIds(i < 32 ? 100 + i : 3);
        assertEquals(key, RouterClient.affinity(other.build(), 32), "only the first 32 tokens count");
        assertEquals(RouterClient.NO_AFFINITY, RouterClient.affinity(GenerateRequest.newBuilder().addPromptTokenIds(1).build(), 32));
        assertEquals(RouterClient.NO_AFFINITY, RouterClient.affinity(other.build(), 0), "0 turns it off");
        preferred.inFlight.set(4);
        assertEquals(preferred, RouterClient.pick(ts, Set.of(), 0, key, 4), "4 more than the least loaded is within the slack");
        preferred.inFlight.set(5);
        assertNotEquals(preferred, RouterClient.pick(ts, Set.of(), 0, key, 4), "5 more is not");
        preferred.inFlight.set(0);
        assertNotEquals(preferred, RouterClient.pick(ts, Set.of(preferred.address), 0, key, 4), "a retry goes elsewhere");
        preferred.failed("UNAVAILABLE");
        assertNotEquals(preferred, RouterClient.pick(ts, Set.of(), 0, key, 4), "not while it is not ready");
        assertEquals(RouterClient.pick(ts, Set.of(), 1), RouterClient.pick(ts, Set.of(), 1, RouterClient.NO_AFFINITY, 4));
    }

    @Test
    void prefixesSpreadOverTheRoutersAndLosingOneMovesOnlyItsOwn() {
        List<RouterTarget> three = List.of(target("a:1", 0), target("b:1", 0), target("c:1", 0));
        List<RouterTarget> two = List.of(three.get(0), three.get(2));
        Map<String, Integer> counts = new HashMap<>();
        for (int p = 0; p < 300; p++) {
            long key = affinity(1000 * p);
            RouterTarget before = RouterClient.pick(three, Set.of(), 0, key, 100);
            counts.merge(before.address, 1, Integer::sum);
            if (!before.address.equals("b:1")) assertEquals(before, RouterClient.pick(two, Set.of(), 0, key, 100), "prefix " + p);
        }
        for (String a : List.of("a:1", "b:1", "c:1")) assertTrue(counts.getOrDefault(a, 0) > 60, "an even spread: " + counts);
    }
}
