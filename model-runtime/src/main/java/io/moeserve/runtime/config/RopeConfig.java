package io.moeserve.runtime.config;

/**
 * Rotary position embedding of one model: which element pairs rotate together, their frequencies, and the factor
 * that scales cos and sin (YaRN's attention factor; 1 otherwise).
 *
 * @param rotaryDim       number of rotated elements per head, from its start (the whole head, DeepSeek's rope slice, or
 *                        GLM-4.5's int(head_dim · partial_rotary_factor), the rest passing through)
 * @param interleaved     true for adjacent pairs (2i, 2i+1) as DeepSeek; false for half-split pairs (i, i + d/2)
 * @param invFreq         rotaryDim/2 inverse frequencies, already scaled (linear, NTK, YaRN)
 * @param attentionFactor multiplies cos and sin (so q·k scales by its square)
 */
public record RopeConfig(int rotaryDim, boolean interleaved, double[] invFreq, double attentionFactor) {

    public RopeConfig {
        if (rotaryDim <= 0 || rotaryDim % 2 != 0) throw new IllegalArgumentException("rotary dim must be even: " + rotaryDim);
        if (invFreq.length != rotaryDim / 2) throw new IllegalArgumentException("need rotaryDim/2 frequencies");
    }

    /** theta^(-2i/d) for i < d/2: the default (unscaled) frequencies. */
    public static double[] defaultInvFreq(double theta, int dim) {
        double[] f = new double[dim / 2];
        // HF computes base ** (arange(0, dim, 2).float() / dim) in float32, then 1/that in float32.
        for (int i = 0; i < f.length; i++) {
            float exponent = (float) (2 * i) / dim;
            float p = (float) Math.pow(theta, exponent);
            f[i] = 1.0f / p;
        }
        return f;
    }

    /**
     * YaRN as transformers computes it ({@code _compute_yarn_parameters}): blends interpolated and original
     * frequencies with a linear ramp between the correction dimensions of beta_fast and beta_slow.
     */
    public static double[] yarnInvFreq(double theta, int dim, double factor, int originalMaxPositions,
                                       double betaFast, double betaSlow, boolean truncate) {
        double low = correctionDim(betaFast, dim, theta, originalMaxPositions);
        double high = correctionDim(betaSlow, dim, theta, originalMaxPositions);
        if (truncate) {
            low = Math.floor(low);
            high = Math.ceil(high);
        }
        low = Math.max(low, 0);
        high = Math.min(high, dim - 1);
        double span = (high == low) ? 0.001 : (high - low);
        double[] f = new double[dim / 2];
        for (int j = 0; j < f.length; j++) {
            float pos = (float) Math.pow(theta, (float) (2 * j) / dim);
            float extrapolation = 1.0f / pos;
            float interpolation = 1.0f / (float) (factor * pos);
            float ramp = (float) Math.min(1.0, Math.max(0.0, (j - low) / span));
            float extrapolationFactor = 1 - ramp;
            f[j] = interpolation * (1 - extrapolationFactor) + extrapolation * extrapolationFactor;
        }
        return f;
    }

    /** YaRN's magnitude correction: 0.1·m·ln(s) + 1 for s > 1, else 1. */
    public static double yarnMscale(double scale, double mscale) {
        return scale <= 1 ? 1.0 : 0.1 * mscale * Math.log(scale) + 1.0;
    }

    private static double correctionDim(double rotations, int dim, double base, int maxPositions) {
        return (dim * Math.log(maxPositions / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
    }
}
