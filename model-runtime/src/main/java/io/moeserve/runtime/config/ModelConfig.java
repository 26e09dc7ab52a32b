package io.moeserve.runtime.config;

import io.moeserve.runtime.family.Architecture;
import java.util.List;

/**
 * One model's shape and semantics, normalised across families from its config.json (see {@link ConfigParser}).
 *
 * @param architecture          the family
 * @param hiddenSize            width of the residual stream
 * @param numLayers             decoder layers (DeepSeek-V3's and GLM-4.5's MTP layers beyond this are not part of the model)
 * @param vocabSize             rows of the embedding and of the lm head
 * @param rmsNormEps            epsilon of every RMSNorm (DeepSeek's latent norms use 1e-6 as HF does)
 * @param tieWordEmbeddings     the lm head is the embedding matrix
 * @param maxPositionEmbeddings longest context the model was built for
 * @param attention             self-attention
 * @param rope                  rotary embedding
 * @param moe                   the MoE block
 * @param denseIntermediate     FFN width of the dense (non-MoE) layers; 0 if every layer is MoE
 * @param sparseLayers          per layer: true if its FFN is the MoE block
 * @param bosTokenId            beginning-of-sequence id, -1 if none
 * @param eosTokenIds           end-of-sequence ids (config.json, overridden by generation_config.json)
 */
public record ModelConfig(
        Architecture architecture,
        int hiddenSize,
        int numLayers,
        int vocabSize,
        float rmsNormEps,
        boolean tieWordEmbeddings,
        int maxPositionEmbeddings,
        AttentionConfig attention,
        RopeConfig rope,
        MoeConfig moe,
        int denseIntermediate,
        boolean[] sparseLayers,
        int bosTokenId,
        List<Integer> eosTokenIds) {

    public boolean isSparse(int layer) {
        return sparseLayers[layer];
    }

    public int numSparseLayers() {
        int n = 0;
        for (boolean s : sparseLayers) if (s) n++;
        return n;
    }

    /** The same model with other stop tokens (generation_config.json's eos_token_id wins over config.json's). */
    public ModelConfig withEosTokenIds(List<Integer> ids) {
        return new ModelConfig(architecture, hiddenSize, numLayers, vocabSize, rmsNormEps, tieWordEmbeddings,
                maxPositionEmbeddings, attention, rope, moe, denseIntermediate, sparseLayers, bosTokenId, List.copyOf(ids));
    }
}
