package io.moeserve.runtime.model;

/** The routed experts of a loaded checkpoint (all, or the subset a process hosts), indexed by layer and id. */
public final class CheckpointExpertStore implements ExpertStore {
    private final ExpertWeights[][] experts;
    private final int numExperts;
    private final int hidden;
    private final int maxIntermediate;

    CheckpointExpertStore(ExpertWeights[][] experts, int numExperts, int hidden, int maxIntermediate) {
        this.experts = experts;
        this.numExperts = numExperts;
        this.hidden = hidden;
        this.maxIntermediate = maxIntermediate;
    }

    @Override
    public ExpertWeights expert(int layer, int expert) {
        ExpertWeights[] l = experts[layer];
        return l == null || expert < 0 || expert >= l.length ? null : l[expert];
    }

    @Override
    public int numExperts() {
        return numExperts;
    }

    @Override
    public int hiddenSize() {
        return hidden;
    }

    @Override
    public int maxIntermediate() {
        return maxIntermediate;
    }

    /** Bytes of expert weights held (mapped, not resident until touched). */
    public long byteSize() {
        long n = 0;
        for (ExpertWeights[] l : experts) {
            if (l == null) continue;
            for (ExpertWeights w : l) if (w != null) n += w.byteSize();
        }
        return n;
    }
}
