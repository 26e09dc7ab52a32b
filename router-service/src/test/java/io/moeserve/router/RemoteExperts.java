package io.moeserve.router;

import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.util.HashMap;
import java.util.Map;

/**
 * Three in-process expert pods for the router's remote-mode tests: group g0 (experts 0-3) with two replicas, group
 * g1 (experts 4-7) with one.
 */
public class RemoteExperts implements QuarkusTestResourceLifecycleManager {
    static InProcessExpertPod g0a;
    static InProcessExpertPod g0b;
    static InProcessExpertPod g1;
    /** moe.router.experts.transport, when the test class's resource argument "transport" sets it. */
    private String transport;

    @Override
    public void init(Map<String, String> initArgs) {
        transport = initArgs.get("transport");
    }

    @Override
    public Map<String, String> start() {
        var dir = TinyRouterModel.dir();
        g0a = new InProcessExpertPod(dir, TinyRouterModel.MODEL_ID, "*:0-3", freePort());
        g0b = new InProcessExpertPod(dir, TinyRouterModel.MODEL_ID, "*:0-3", freePort());
        g1 = new InProcessExpertPod(dir, TinyRouterModel.MODEL_ID, "*:4-7", freePort());
        Map<String, String> m = new HashMap<>();
        m.put("moe.model.path", dir.toString());
        m.put("moe.router.batching.max-step-tokens", "16");
        m.put("moe.router.batching.max-sequences", "8");
        m.put("moe.router.batching.max-context", "256");
        m.put("moe.router.experts.mode", "remote");
        m.put("moe.router.experts.groups.g0.hosts", "*:0-3");
        m.put("moe.router.experts.groups.g0.endpoints", "127.0.0.1:" + g0a.port + ",127.0.0.1:" + g0b.port);
        m.put("moe.router.experts.groups.g1.hosts", "*:4-7");
        m.put("moe.router.experts.groups.g1.endpoints", "127.0.0.1:" + g1.port);
        m.put("moe.router.experts.refresh-interval", "200ms");
        m.put("moe.router.experts.call-timeout", "500ms");
        m.put("moe.router.experts.failure-backoff", "300ms");
        if (transport != null) m.put("moe.router.experts.transport", transport);
        m.put("moe.router.experts.micro-batches", "2");
        return m;
    }

    static int freePort() {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public void stop() {
        try {
            for (InProcessExpertPod p : new InProcessExpertPod[] {g0a, g0b, g1}) if (p != null) p.close();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
