package io.moeserve.runtime.config;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Locale;

/**
 * config.json's rotary-embedding keys in any of their three spellings (transformers v5's {@code rope_parameters};
 * {@code rope_theta} with {@code rope_scaling} keyed by {@code type} or {@code rope_type}), and the
 * {@link RopeConfig} they make: default, linear, dynamic (which changes nothing within max_position_embeddings),
 * YaRN, and MoE++'s NTK where the family allows it.
 *
 * @param type      the scaling type, lower case ("default" when none is given)
 * @param theta     rope_theta
 * @param params    the object holding the scaling keys, or null
 * @param keyPrefix how error messages name those keys
 */
public record RopeParameters(String type, double theta, JsonNode params, String keyPrefix) {

    /** Reads the parameters; {@code defaultTheta} is the family's rope_theta when the config has none. */
    public static RopeParameters read(ConfigReader c, double defaultTheta) {
        JsonNode v5 = c.node("rope_parameters");
        if (v5 != null) {
            if (!v5.isObject()) throw c.error("rope_parameters", "must be an object");
            String type = v5.has("rope_type") ? v5.get("rope_type").asText() : v5.has("type") ? v5.get("type").asText() : "default";
            double theta = v5.has("rope_theta") ? v5.get("rope_theta").asDouble() : c.doubleOr("rope_theta", defaultTheta);
            return new RopeParameters(type.toLowerCase(Locale.ROOT), theta, v5, "rope_parameters.");
        }
        double theta = c.doubleOr("rope_theta", defaultTheta);
        JsonNode scaling = c.node("rope_scaling");
        if (scaling == null) return new RopeParameters("default", theta, null, "rope_scaling.");
        if (!scaling.isObject()) throw c.error("rope_scaling", "must be an object or null");
        String type = scaling.has("rope_type") ? scaling.get("rope_type").asText()
                : scaling.has("type") ? scaling.get("type").asText() : "default";
        return new RopeParameters(type.toLowerCase(Locale.ROOT), theta, scaling, "rope_scaling.");
    }

    /**
     * The rotary embedding these parameters describe.
     *
     * @param dim         rotated elements per head
     * @param interleaved adjacent pairs (DeepSeek) rather than half-split pairs
     * @param ntkAllowed  whether the family defines type "ntk" (MoE++ does)
     * @param maxPos      max_position_embeddings
     */
    public RopeConfig toRope(ConfigReader c, int dim, boolean interleaved, boolean ntkAllowed, int maxPos) {
        if (!(theta > 0)) throw c.error(keyPrefix + "rope_theta", "must be positive");
        return switch (type) {
            // Dynamic NTK only changes frequencies beyond max_position_embeddings, which this runtime never runs.
            case "default", "dynamic" -> new RopeConfig(dim, interleaved, RopeConfig.defaultInvFreq(theta, dim), 1.0);
            case "linear" -> {
                double factor = requireFactor(c, 0);
                double[] f = RopeConfig.defaultInvFreq(theta, dim);
                for (int i = 0; i < f.length; i++) f[i] = (float) (f[i] / factor);
                yield new RopeConfig(dim, interleaved, f, 1.0);
            }
            case "ntk" -> {
                if (!ntkAllowed) throw c.error(keyPrefix + "type", "\"ntk\" is only defined for MoE++");
                double factor = requireFactor(c, 0);
                yield new RopeConfig(dim, interleaved, RopeConfig.defaultInvFreq(theta * factor, dim), 1.0);
            }
            case "yarn" -> {
                double factor = requireFactor(c, 1);
                int original = intOr(c, "original_max_position_embeddings", maxPos);
                if (has("original_max_position_embeddings")) factor = (double) maxPos / original;
                double[] f = RopeConfig.yarnInvFreq(theta, dim, factor, original, doubleOr(c, "beta_fast", 32),
                        doubleOr(c, "beta_slow", 1), boolOr(c, "truncate", true));
                double mscale = doubleOr(c, "mscale", 0);
                double mscaleAll = doubleOr(c, "mscale_all_dim", 0);
                double attentionFactor;
                if (has("attention_factor")) attentionFactor = doubleOr(c, "attention_factor", 1);
                else if (mscale != 0 && mscaleAll != 0) {
                    attentionFactor = RopeConfig.yarnMscale(factor, mscale) / RopeConfig.yarnMscale(factor, mscaleAll);
                } else attentionFactor = RopeConfig.yarnMscale(factor, 1);
                yield new RopeConfig(dim, interleaved, f, attentionFactor);
            }
            default -> throw c.error(keyPrefix + "type", "\"" + type + "\" is not supported (default, linear, dynamic, yarn)");
        };
    }

    public boolean has(String key) {
        return params != null && params.has(key) && !params.get(key).isNull();
    }

    public double doubleOr(ConfigReader c, String key, double fallback) {
        if (!has(key)) return fallback;
        JsonNode n = params.get(key);
        if (!n.isNumber()) throw c.error(keyPrefix + key, "must be a number, got " + n);
        return n.asDouble();
    }

    public int intOr(ConfigReader c, String key, int fallback) {
        if (!has(key)) return fallback;
        JsonNode n = params.get(key);
        if (!n.isIntegralNumber() || n.asInt() <= 0) throw c.error(keyPrefix + key, "must be a positive integer, got " + n);
        return n.asInt();
    }

    public boolean boolOr(ConfigReader c, String key, boolean fallback) {
        if (!has(key)) return fallback;
        JsonNode n = params.get(key);
        if (!n.isBoolean()) throw c.error(keyPrefix + key, "must be true or false, got " + n);
        return n.asBoolean();
    }

    public double requireFactor(ConfigReader c, double minimum) {
        if (!has("factor")) throw c.error(keyPrefix + "factor", "is required for rope type " + type);
        double f = doubleOr(c, "factor", 1);
        if (!(f > minimum) && !(minimum == 1 && f == 1)) throw c.error(keyPrefix + "factor", "must be greater than " + minimum + ", got " + f);
        return f;
    }
}
