package io.moeserve.router;

import io.moeserve.runtime.config.ConfigParser;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.merge.CheckpointMerger;
import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * The tiny router model merged to 6 experts per layer ({@code moe merge}'s checkpoint, the gate keeping its 8
 * outputs), served by two in-process expert pods that split the merged experts: g0 hosts 0-2, g1 hosts 3-5.
 */
public class MergedRemoteExperts implements QuarkusTestResourceLifecycleManager {
    static final int MERGED = 6;
    static Path dir;
    static InProcessExpertPod g0;
    static InProcessExpertPod g1;

    static synchronized Path dir() {
        if (dir == null) {
            Path source = TinyRouterModel.dir();
            ModelConfig config = ConfigParser.load(source);
            double[][] importance = new double[config.numLayers()][config.moe().numExperts()];
            for (int l = 0; l < importance.length; l++) for (int e = 0; e < importance[l].length; e++) importance[l][e] = (5 * e + l) % 8 + 1;
            try {
                dir = Files.createTempDirectory("router-merged").resolve(TinyRouterModel.MODEL_ID);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            CheckpointMerger.write(source, dir, CheckpointMerger.groups(source, importance, MERGED), importance, true);
        }
        return dir;
    }

    @Override
    public Map<String, String> start() {
        Path merged = dir();
        g0 = new InProcessExpertPod(merged, TinyRouterModel.MODEL_ID, "*:0-2", RemoteExperts.freePort());
        g1 = new InProcessExpertPod(merged, TinyRouterModel.MODEL_ID, "*:3-5", RemoteExperts.freePort());
        Map<String, String> m = new HashMap<>();
        m.put("moe.model.path", merged.toString());
        m.put("moe.router.batching.max-step-tokens", "16");
        m.put("moe.router.batching.max-sequences", "8");
        m.put("moe.router.batching.max-context", "256");
        m.put("moe.router.experts.mode", "remote");
        m.put("moe.router.experts.groups.g0.hosts", "*:0-2");
        m.put("moe.router.experts.groups.g0.endpoints", "127.0.0.1:" + g0.port);
        m.put("moe.router.experts.groups.g1.hosts", "*:3-5");
        m.put("moe.router.experts.groups.g1.endpoints", "127.0.0.1:" + g1.port);
        m.put("moe.router.experts.refresh-interval", "200ms");
        return m;
    }

    @Override
    public void stop() {
        try {
            for (InProcessExpertPod p : new InProcessExpertPod[] {g0, g1}) if (p != null) p.close();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
