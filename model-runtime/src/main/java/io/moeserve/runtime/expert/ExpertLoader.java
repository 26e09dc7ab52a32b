package io.moeserve.runtime.expert;

import io.moeserve.runtime.checkpoint.Checkpoint;
import io.moeserve.runtime.config.ModelConfig;
import io.moeserve.runtime.config.MoeConfig;
import io.moeserve.runtime.family.ExpertProjections;
import io.moeserve.runtime.family.ModelFamily;
import io.moeserve.runtime.family.TensorLayout;
import io.moeserve.runtime.tensor.Tensor;
import io.moeserve.runtime.tensor.WeightMatrix;

/**
 * Finds the routed experts' weights in a checkpoint, in the hub's per-expert layout or transformers v5's fused one,
 * and keeps views (never copies) of the experts a process hosts.
 *
 * <p>Two callers. A whole model validates every expert's tensors (names and shapes), hosted or not, so that its
 * "every tensor used" check holds. An expert pod fetches only the experts it hosts: it maps the shards, but
 * touches and checks nothing else, so a pod with 8 of 256 experts per layer validates 8.
 *
 * <p>The store is sized to the routed FFN experts, the ids executors are called with: in a merged checkpoint the M
 * merged experts, not the gate's N outputs (the alias table maps those to merged ids before any executor sees
 * them), and never MoE++'s zero-computation experts, which run where the gate runs.
 */
public final class ExpertLoader {
    private ExpertLoader() {}

    /** The hosted experts of an expert pod: only their tensors are fetched and validated. */
    public static CheckpointExpertStore loadHosted(ModelConfig config, Checkpoint checkpoint, ExpertSelection hosted) {
        return load(config, checkpoint, hosted, false);
    }

    /**
     * The hosted experts of a whole model, which fetches (validates, marks consumed) every routed expert's tensors,
     * hosted or not, so that its "every tensor used" check holds.
     */
    public static CheckpointExpertStore loadForModel(ModelConfig config, Checkpoint checkpoint, ExpertSelection hosted) {
        return load(config, checkpoint, hosted, true);
    }

    private static CheckpointExpertStore load(ModelConfig config, Checkpoint ck, ExpertSelection hosted, boolean validateAll) {
        MoeConfig m = config.moe();
        ModelFamily family = config.architecture().family();
        int h = config.hiddenSize();
        int w = m.expertIntermediate();
        int ffn = m.numFfnExperts();
        ExpertWeights[][] all = new ExpertWeights[config.numLayers()][];
        ExpertProjections names = family.expertProjections();
        for (int i = 0; i < config.numLayers(); i++) {
            if (!config.isSparse(i)) continue;
            all[i] = new ExpertWeights[ffn];
            boolean any = validateAll;
            for (int x = 0; x < ffn && !any; x++) any = hosted.hosts(i, x);
            if (!any) continue;
            ExpertWeights[] own = family.loadExperts(config, ck, i, hosted, validateAll);
            if (own != null) {
                System.arraycopy(own, 0, all[i], 0, ffn);
                continue;
            }
            String[] fused = TensorLayout.fusedExpertTensors(i);
            if (family.acceptsFusedExperts() && ck.contains(fused[0])) {
                Tensor gateUp = ck.tensor(fused[0], ffn, 2L * w, h);
                Tensor down = ck.tensor(fused[1], ffn, h, w);
                WeightMatrix gu = new WeightMatrix(gateUp.name(), gateUp.data(), gateUp.dtype(), ffn * 2 * w, h);
                WeightMatrix dn = new WeightMatrix(down.name(), down.data(), down.dtype(), ffn * h, w);
                for (int x = 0; x < ffn; x++) {
                    if (!hosted.hosts(i, x)) continue;
                    all[i][x] = new ExpertWeights(gu.rowSlice(gu.name() + "[" + x + "].gate", 2 * w * x, w),
                            gu.rowSlice(gu.name() + "[" + x + "].up", 2 * w * x + w, w),
                            dn.rowSlice(dn.name() + "[" + x + "]", h * x, h));
                }
                continue;
            }
            for (int x = 0; x < ffn; x++) {
                boolean host = hosted.hosts(i, x);
                if (!host && !validateAll) continue;
                String ep = family.expertPrefix(i, x);
                WeightMatrix gate, up;
                if (names.fusedGateUp()) {
                    WeightMatrix gu = ck.matrix(ep + names.up(), 2L * w, h);
                    gate = gu.rowSlice(gu.name() + "[gate]", 0, w);
                    up = gu.rowSlice(gu.name() + "[up]", w, w);
                } else {
                    gate = ck.matrix(ep + names.gate(), w, h);
                    up = ck.matrix(ep + names.up(), w, h);
                }
                WeightMatrix down = ck.matrix(ep + names.down(), h, w);
                if (host) all[i][x] = new ExpertWeights(gate, up, down);
            }
        }
        return new CheckpointExpertStore(all, ffn, h, w);
    }
}
