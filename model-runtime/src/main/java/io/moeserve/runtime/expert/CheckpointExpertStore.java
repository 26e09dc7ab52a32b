package io.moeserve.runtime.expert;

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

    /** Ids of the experts of {@code layer} held here, ascending (empty for dense layers and unhosted ones). */
    public int[] hostedExperts(int layer) {
        ExpertWeights[] l = layer < 0 || layer >= experts.length ? null : experts[layer];
        if (l == null) return new int[0];
        int n = 0;
        for (ExpertWeights w : l) if (w != null) n++;
        int[] ids = new int[n];
        n = 0;
        for (int e = 0; e < l.length; e++) if (l[e] != null) ids[n++] = e;
        return ids;
    }

    /**
     * The same experts with each matrix replaced by {@code f} (quantized copies, say); the new store holds no
     * reference to the old matrices, whose mapped pages the operating system may then drop.
     */
    public CheckpointExpertStore map(java.util.function.UnaryOperator<io.moeserve.runtime.tensor.WeightMatrix> f) {
        ExpertWeights[][] out = new ExpertWeights[experts.length][];
        for (int l = 0; l < experts.length; l++) {
            if (experts[l] == null) continue;
            out[l] = new ExpertWeights[experts[l].length];
            for (int e = 0; e < experts[l].length; e++) {
                ExpertWeights w = experts[l][e];
                if (w != null) out[l][e] = w.map(f);
            }
        }
        return new CheckpointExpertStore(out, numExperts, hidden, maxIntermediate);
    }

    /** Number of decoder layers (hosted or not). */
    public int numLayers() {
        return experts.length;
    }

    /**
     * Reads every hosted expert's pages into memory (they are mapped lazily), so that a pod reports ready only when
     * its first call will not wait on the disk. Returns the bytes touched.
     */
    public long prefault() {
        long n = 0;
        for (ExpertWeights[] l : experts) {
            if (l == null) continue;
            for (ExpertWeights w : l) {
                if (w == null) continue;
                w.prefault();
                n += w.byteSize();
            }
        }
        return n;
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
