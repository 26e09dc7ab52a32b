package io.moeserve.runtime.synthetic;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.moeserve.runtime.family.Architecture;
import io.moeserve.runtime.family.ModelFamily;
import java.util.Locale;

/**
 * config.json contents for synthetic models of every architecture, in a few sizes: the keys every family shares and
 * the sizes here, the rest in each family's own spelling from its {@link ModelFamily#writeSampleConfig}, which
 * exercises the family's distinctive paths on purpose (dense layers, shared experts, biases, q/k norms, YaRN,
 * partial rotary embeddings, group-limited routing, zero-computation experts, an MTP layer to be ignored).
 */
public final class SyntheticConfigs {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Model sizes the generator knows. */
    public enum Size {
        /** A few hundred thousand parameters: unit tests. */
        TINY,
        /** Tens of millions: the built-in default model and end-to-end tests. */
        SMALL,
        /** The benchmark model of the runtime issue (Mixtral-shaped, ~1.2 B parameters). */
        BENCH;

        public static Size parse(String s) {
            return valueOf(s.toUpperCase(Locale.ROOT).replace('-', '_'));
        }
    }

    private SyntheticConfigs() {}

    /** The vocabulary size of a preset. */
    public static int vocabSize(Architecture arch, Size size) {
        return config(arch, size, "float32").get("vocab_size").asInt();
    }

    public static ObjectNode config(Architecture arch, Size size, String torchDtype) {
        ObjectNode c = JSON.createObjectNode();
        c.putArray("architectures").add(arch.hfClassName());
        c.put("hidden_act", "silu");
        c.put("torch_dtype", torchDtype);
        c.put("initializer_range", 0.02);
        c.put("tie_word_embeddings", false);
        c.put("bos_token_id", 0);
        int vocab;
        int hidden;
        int layers;
        int heads;
        int kvHeads;
        int expertWidth;
        int experts;
        switch (size) {
            case TINY -> {
                vocab = 384;
                hidden = 64;
                layers = 3;
                heads = 4;
                kvHeads = 2;
                expertWidth = 48;
                experts = 8;
            }
            case SMALL -> {
                vocab = 4096;
                hidden = 256;
                layers = 4;
                heads = 8;
                kvHeads = 4;
                expertWidth = 512;
                experts = 8;
            }
            default -> {
                vocab = 32000;
                hidden = 1024;
                layers = 16;
                heads = 16;
                kvHeads = 4;
                expertWidth = 2816;
                experts = 8;
            }
        }
        c.put("vocab_size", vocab);
        c.put("hidden_size", hidden);
        c.put("num_hidden_layers", layers);
        c.put("num_attention_heads", heads);
        c.put("num_key_value_heads", kvHeads);
        c.put("max_position_embeddings", 4096);
        arch.family().writeSampleConfig(c, new ModelFamily.SampleShape(hidden, heads, expertWidth, experts));
        return c;
    }
}
