package io.moeserve.system;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.moeserve.runtime.family.Architecture;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Discovery by DNS, as a headless Kubernetes Service works: one name resolves to every pod's address, all pods on
 * the same port. The router's JVM resolves names from a hosts file here (jdk.net.hosts.file), which the test
 * rewrites as pods come and go; two pods listen on the same port on 127.0.0.2 and 127.0.0.3.
 */
class ExpertDiscoveryIT {
    private static final Path MODEL = Models.small(Architecture.MIXTRAL);
    private static final Pattern CALLS = Pattern.compile("moe_expert_pod_calls_total\\{group=\"low\"\\} ([0-9.E+]+)");

    @Test
    void podsComeAndGoBehindOneName() throws IOException {
        Path hosts = Files.createTempFile("moe-hosts", ".txt");
        int port = ServiceProcess.freePort();
        writeHosts(hosts, "127.0.0.2");
        try (Deployment d = new Deployment(MODEL, "mixtral")) {
            ServiceProcess a = expert(d, "127.0.0.2", port);
            ServiceProcess b = expert(d, "127.0.0.3", port);
            d.startExpert("high", "*:4-7");
            Map<String, String> router = new HashMap<>();
            router.put("moe.router.experts.groups.low.endpoints", "dns:experts-low.moe.test:" + port);
            router.put("moe.router.experts.refresh-interval", "300ms");
            router.put("jdk.net.hosts.file", hosts.toString());
            d.startRouter(router);
            d.awaitReady();
            int[] prompt = {5, 9, 300, 77, 12};
            int[] expected = Models.inProcess(MODEL, prompt, 12);

            assertArrayEquals(expected, d.generate(prompt, 12));
            assertTrue(calls(a) > 0 && calls(b) == 0, "only the pod the name resolves to serves");

            writeHosts(hosts, "127.0.0.2", "127.0.0.3");
            awaitReadiness(d, "2 of 2 pods ready (*:0-3)");
            double before = calls(b);
            assertArrayEquals(expected, d.generate(prompt, 12));
            assertTrue(calls(b) > before, "a pod added behind the name gets work");

            writeHosts(hosts, "127.0.0.3");
            awaitReadiness(d, "1 of 1 pods ready (*:0-3)");
            double aBefore = calls(a);
            assertArrayEquals(expected, d.generate(prompt, 12));
            assertTrue(calls(a) == aBefore, "a pod removed from the name gets no more work");
        } finally {
            Files.deleteIfExists(hosts);
        }
    }

    private static ServiceProcess expert(Deployment d, String address, int port) {
        Map<String, String> c = new HashMap<>();
        c.put("quarkus.grpc.server.host", address);
        c.put("quarkus.grpc.server.port", Integer.toString(port));
        return d.startExpert("low", "*:0-3", c);
    }

    private static void writeHosts(Path file, String... addresses) throws IOException {
        StringBuilder b = new StringBuilder("127.0.0.1 localhost\n");
        for (String a : addresses) b.append(a).append(" experts-low.moe.test\n");
        Files.writeString(file, b.toString());
    }

    private static double calls(ServiceProcess p) {
        Matcher m = CALLS.matcher(p.get("/q/metrics"));
        return m.find() ? Double.parseDouble(m.group(1)) : 0;
    }

    private static void awaitReadiness(Deployment d, String text) {
        for (int i = 0; i < 200; i++) {
            if (d.router.get("/q/health/ready").contains(text)) return;
            ServiceProcess.sleep(100);
        }
        throw new AssertionError("router never reported '" + text + "': " + d.router.get("/q/health/ready"));
    }
}
