#!/usr/bin/env python3
"""Write tiny random Hugging Face style MoE checkpoints with numpy only.

Each checkpoint directory gets config.json, generation_config.json and either
model.safetensors or model-0000i-of-0000N.safetensors + model.safetensors.index.json.
Tensor names and layouts are the on-disk (hub) ones of each family: per-expert linear
weights [out, in]; see README.md. Weights are F32, BF16 (round-to-nearest-even) or F16.

Usage:
    python3 make_tiny_checkpoint.py ARCH OUT_DIR [--dtype f32|bf16|f16] [--shards N] [--seed S]
                                    [--set key=JSON ...]
    python3 make_tiny_checkpoint.py --suite OUT_ROOT     # standard variants + OUT_ROOT/suite.json

ARCH: mixtral, qwen2_moe, qwen3_moe, olmoe, deepseek_v2, deepseek_v3, moepp, glm4_moe
(or the architectures[0] class name). --set overrides config.json keys before weights are
generated, e.g. --set tie_word_embeddings=true --set 'rope_scaling={"type":"linear","factor":2.0}'.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import sys

import numpy as np

# ----------------------------------------------------------------------------------------
# safetensors writer
# ----------------------------------------------------------------------------------------


def f32_to_bf16_bits(a):
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even (NaN kept quiet)."""
    u = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    rounding = ((u >> 16) & 1) + 0x7FFF
    out = ((u + rounding) >> 16).astype("<u2")
    nan = np.isnan(np.asarray(a, dtype=np.float32))
    if nan.any():
        out[nan] = 0x7FC0
    return out


def encode_tensor(arr, dtype):
    arr = np.asarray(arr)
    if dtype == "F32":
        return np.ascontiguousarray(arr, dtype="<f4").tobytes()
    if dtype == "F16":
        return np.ascontiguousarray(arr.astype(np.float32).astype("<f2")).tobytes()
    if dtype == "BF16":
        return f32_to_bf16_bits(arr.astype(np.float32)).tobytes()
    if dtype == "F64":
        return np.ascontiguousarray(arr, dtype="<f8").tobytes()
    raise ValueError(f"unsupported dtype {dtype}")


def write_safetensors(path, tensors):
    """tensors: list of (name, array, dtype) in file order."""
    header = {}
    blobs = []
    offset = 0
    for name, arr, dtype in tensors:
        b = encode_tensor(arr, dtype)
        header[name] = {"dtype": dtype, "shape": [int(s) for s in np.shape(arr)],
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(np.array([len(h)], dtype="<u8").tobytes())
        f.write(h)
        for b in blobs:
            f.write(b)


def write_checkpoint(out_dir, config, tensors, dtype="F32", shards=1, generation_config=None, keep_f32=()):
    """tensors: dict name -> float32 array. keep_f32: names stored as F32 whatever `dtype` is."""
    os.makedirs(out_dir, exist_ok=True)
    for fn in os.listdir(out_dir):
        if fn.endswith(".safetensors") or fn == "model.safetensors.index.json":
            os.remove(os.path.join(out_dir, fn))
    items = [(n, a, "F32" if n in keep_f32 else dtype) for n, a in tensors.items()]
    cfg = dict(config)
    cfg["torch_dtype"] = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[dtype]
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    if generation_config is not None:
        with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
            json.dump(generation_config, f, indent=2)
    if shards <= 1:
        write_safetensors(os.path.join(out_dir, "model.safetensors"), items)
        return
    shards = min(shards, len(items))
    per = -(-len(items) // shards)
    weight_map = {}
    total = 0
    for s in range(shards):
        chunk = items[s * per:(s + 1) * per]
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(os.path.join(out_dir, fname), chunk)
        for n, a, d in chunk:
            weight_map[n] = fname
            total += int(np.prod(np.shape(a))) * (4 if d == "F32" else 2)
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


# ----------------------------------------------------------------------------------------
# configs
# ----------------------------------------------------------------------------------------

ARCH_ALIASES = {
    "mixtral": "mixtral", "MixtralForCausalLM": "mixtral",
    "qwen2_moe": "qwen2_moe", "Qwen2MoeForCausalLM": "qwen2_moe",
    "qwen3_moe": "qwen3_moe", "Qwen3MoeForCausalLM": "qwen3_moe",
    "olmoe": "olmoe", "OlmoeForCausalLM": "olmoe",
    "deepseek_v2": "deepseek_v2", "DeepseekV2ForCausalLM": "deepseek_v2",
    "deepseek_v3": "deepseek_v3", "DeepseekV3ForCausalLM": "deepseek_v3",
    "moepp": "moepp", "MoE++": "moepp", "MoeForCausalLM": "moepp",
    "glm4_moe": "glm4_moe", "Glm4MoeForCausalLM": "glm4_moe",
}

_COMMON = {
    "vocab_size": 96, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4,
    "num_key_value_heads": 2, "hidden_act": "silu", "max_position_embeddings": 64,
    "initializer_range": 0.02, "tie_word_embeddings": False, "bos_token_id": 1, "eos_token_id": 2,
    "use_cache": True,
}


def base_config(arch):
    c = copy.deepcopy(_COMMON)
    if arch == "mixtral":
        c.update(architectures=["MixtralForCausalLM"], model_type="mixtral", intermediate_size=24,
                 num_local_experts=8, num_experts_per_tok=2, rms_norm_eps=1e-5, rope_theta=1e6,
                 sliding_window=None, router_jitter_noise=0.0, output_router_logits=False)
    elif arch == "qwen2_moe":
        c.update(architectures=["Qwen2MoeForCausalLM"], model_type="qwen2_moe", intermediate_size=40,
                 moe_intermediate_size=16, shared_expert_intermediate_size=28, num_experts=8,
                 num_experts_per_tok=2, norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[1],
                 qkv_bias=True, rms_norm_eps=1e-6, rope_theta=1e4, use_sliding_window=False,
                 sliding_window=4096, max_window_layers=28)
    elif arch == "qwen3_moe":
        c.update(architectures=["Qwen3MoeForCausalLM"], model_type="qwen3_moe", intermediate_size=40,
                 moe_intermediate_size=16, num_experts=8, num_experts_per_tok=2, norm_topk_prob=True,
                 decoder_sparse_step=1, mlp_only_layers=[], head_dim=12, attention_bias=False,
                 rms_norm_eps=1e-6, rope_theta=1e6, use_sliding_window=False, sliding_window=None,
                 max_window_layers=3)
    elif arch == "olmoe":
        c.update(architectures=["OlmoeForCausalLM"], model_type="olmoe", intermediate_size=16,
                 num_experts=8, num_experts_per_tok=2, norm_topk_prob=False, clip_qkv=None,
                 attention_bias=False, rms_norm_eps=1e-5, rope_theta=1e4, num_key_value_heads=4)
    elif arch == "deepseek_v2":
        c.update(architectures=["DeepseekV2ForCausalLM"], model_type="deepseek_v2", intermediate_size=40,
                 moe_intermediate_size=12, n_routed_experts=8, n_shared_experts=2, num_experts_per_tok=2,
                 first_k_dense_replace=1, moe_layer_freq=1, topk_method="greedy", n_group=1, topk_group=1,
                 routed_scaling_factor=1.0, norm_topk_prob=False, scoring_func="softmax", q_lora_rank=None,
                 kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8,
                 num_key_value_heads=4, rms_norm_eps=1e-6, rope_theta=1e4, max_position_embeddings=256,
                 rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
                               "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
                 attention_bias=False)
    elif arch == "deepseek_v3":
        c.update(architectures=["DeepseekV3ForCausalLM"], model_type="deepseek_v3", intermediate_size=40,
                 moe_intermediate_size=12, n_routed_experts=16, n_shared_experts=1, num_experts_per_tok=4,
                 first_k_dense_replace=1, moe_layer_freq=1, topk_method="noaux_tc", n_group=4, topk_group=2,
                 routed_scaling_factor=2.5, norm_topk_prob=True, scoring_func="sigmoid", q_lora_rank=16,
                 kv_lora_rank=16, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8,
                 num_key_value_heads=4, rms_norm_eps=1e-6, rope_theta=1e4, max_position_embeddings=256,
                 rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
                               "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
                 num_nextn_predict_layers=1, attention_bias=False)
    elif arch == "moepp":
        c.update(architectures=["MoeForCausalLM"], model_type="MoE++", intermediate_size=16,
                 num_experts=[8], moe_expert_interval=1, moe_use_mixtral_gating=False, moe_2layer_gate=True,
                 moe_use_logits_norm=False, moe_gate_norm_std=1.0, moe_feature_no_mul_topk=False,
                 num_key_value_heads=4, rms_norm_eps=1e-6, rope_theta=1e4, rope_scaling=None,
                 pretraining_tp=1,
                 auto_map={"AutoConfig": "configuration_moe_plus_plus.MoeConfig",
                           "AutoModelForCausalLM": "modeling_moe_plus_plus.MoeForCausalLM"})
    elif arch == "glm4_moe":
        # head_dim 12 != 32/4, 6 of its 12 elements rotated; real groups (4 of 4, 2 kept) as in DeepSeek-V3
        c.update(architectures=["Glm4MoeForCausalLM"], model_type="glm4_moe", intermediate_size=40,
                 moe_intermediate_size=12, n_routed_experts=16, n_shared_experts=1, num_experts_per_tok=4,
                 first_k_dense_replace=1, n_group=4, topk_group=2, routed_scaling_factor=2.5,
                 norm_topk_prob=True, head_dim=12, partial_rotary_factor=0.5, attention_bias=True,
                 use_qk_norm=True, rms_norm_eps=1e-5, rope_theta=1e6, num_nextn_predict_layers=1)
    else:
        raise ValueError(f"unknown arch {arch!r}")
    return c


# ----------------------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------------------

class _Gen:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def lin(self, out_f, in_f, gain=1.0):
        return (self.rng.standard_normal((out_f, in_f)) * (gain / np.sqrt(in_f))).astype(np.float32)

    def norm(self, n):
        return (1.0 + 0.1 * self.rng.standard_normal(n)).astype(np.float32)

    def vec(self, n, std):
        return (self.rng.standard_normal(n) * std).astype(np.float32)


def _moe_layers(arch, c):
    L = c["num_hidden_layers"]
    if arch in ("mixtral", "olmoe"):
        return set(range(L))
    if arch in ("qwen2_moe", "qwen3_moe"):
        step = c.get("decoder_sparse_step", 1) or 1
        mlo = set(c.get("mlp_only_layers") or [])
        return {i for i in range(L) if i not in mlo and c["num_experts"] > 0 and (i + 1) % step == 0}
    if arch in ("deepseek_v2", "deepseek_v3"):
        fk, fr = c.get("first_k_dense_replace", 0), c.get("moe_layer_freq", 1) or 1
        return {i for i in range(L) if i >= fk and i % fr == 0}
    if arch == "glm4_moe":
        return set(range(c.get("first_k_dense_replace", 1), L))
    if arch == "moepp":
        iv = c.get("moe_expert_interval", 1)
        return {i for i in range(L) if iv == 1 or (i + 1) % iv == 0}
    raise ValueError(arch)


def _mlp(t, g, p, H, inter):
    t[p + "gate_proj.weight"] = g.lin(inter, H)
    t[p + "up_proj.weight"] = g.lin(inter, H)
    t[p + "down_proj.weight"] = g.lin(H, inter)


def _std_attention(t, g, c, p, arch):
    H, nh, nkv = c["hidden_size"], c["num_attention_heads"], c.get("num_key_value_heads") or c["num_attention_heads"]
    hd = c.get("head_dim") or H // nh
    t[p + "q_proj.weight"] = g.lin(nh * hd, H)
    t[p + "k_proj.weight"] = g.lin(nkv * hd, H)
    t[p + "v_proj.weight"] = g.lin(nkv * hd, H)
    t[p + "o_proj.weight"] = g.lin(H, nh * hd)
    qkv_bias = (arch == "qwen2_moe" and c.get("qkv_bias", True)) or \
               (arch in ("qwen3_moe", "olmoe", "glm4_moe") and c.get("attention_bias", False))
    if qkv_bias:
        t[p + "q_proj.bias"] = g.vec(nh * hd, 0.1)
        t[p + "k_proj.bias"] = g.vec(nkv * hd, 0.1)
        t[p + "v_proj.bias"] = g.vec(nkv * hd, 0.1)
    if arch in ("qwen3_moe", "olmoe") and c.get("attention_bias", False):
        t[p + "o_proj.bias"] = g.vec(H, 0.1)
    if arch == "qwen3_moe" or (arch == "glm4_moe" and c.get("use_qk_norm", False)):
        t[p + "q_norm.weight"] = g.norm(hd)
        t[p + "k_norm.weight"] = g.norm(hd)
    if arch == "olmoe":
        t[p + "q_norm.weight"] = g.norm(nh * hd)
        t[p + "k_norm.weight"] = g.norm(nkv * hd)


def _mla_attention(t, g, c, p):
    H, nh = c["hidden_size"], c["num_attention_heads"]
    nope, rope, vd, r = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"], c["kv_lora_rank"]
    qk = nope + rope
    bias = c.get("attention_bias", False)
    if c.get("q_lora_rank") is None:
        t[p + "q_proj.weight"] = g.lin(nh * qk, H)
    else:
        ql = c["q_lora_rank"]
        t[p + "q_a_proj.weight"] = g.lin(ql, H)
        if bias:
            t[p + "q_a_proj.bias"] = g.vec(ql, 0.1)
        t[p + "q_a_layernorm.weight"] = g.norm(ql)
        t[p + "q_b_proj.weight"] = g.lin(nh * qk, ql)
    t[p + "kv_a_proj_with_mqa.weight"] = g.lin(r + rope, H)
    if bias:
        t[p + "kv_a_proj_with_mqa.bias"] = g.vec(r + rope, 0.1)
    t[p + "kv_a_layernorm.weight"] = g.norm(r)
    t[p + "kv_b_proj.weight"] = g.lin(nh * (nope + vd), r)
    t[p + "o_proj.weight"] = g.lin(H, nh * vd)
    if bias:
        t[p + "o_proj.bias"] = g.vec(H, 0.1)


GATE_GAIN = 3.0  # gate logits of std ~3: well separated choices, few near-ties


def build_tensors(arch, c, seed=0, fused_experts=False):
    """Returns (tensors dict, names to keep in F32)."""
    g = _Gen(seed)
    t = {}
    keep_f32 = set()
    H, V, L = c["hidden_size"], c["vocab_size"], c["num_hidden_layers"]
    t["model.embed_tokens.weight"] = g.rng.standard_normal((V, H)).astype(np.float32)
    moe = _moe_layers(arch, c)
    with_mtp = arch in ("deepseek_v3", "glm4_moe")
    n_layers_written = L + (int(c.get("num_nextn_predict_layers") or 0) if with_mtp else 0)
    for i in range(n_layers_written):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = g.norm(H)
        t[p + "post_attention_layernorm.weight"] = g.norm(H)
        if arch in ("deepseek_v2", "deepseek_v3"):
            _mla_attention(t, g, c, p + "self_attn.")
        else:
            _std_attention(t, g, c, p + "self_attn.", arch)
        is_moe = i in moe or i >= L
        if arch == "mixtral":
            E, I = c["num_local_experts"], c["intermediate_size"]
            if fused_experts:  # transformers-v5 in-memory layout (test-only; not a hub layout)
                t[p + "mlp.gate.weight"] = g.lin(E, H, GATE_GAIN)
                gate = np.stack([g.lin(I, H) for _ in range(E)])
                up = np.stack([g.lin(I, H) for _ in range(E)])
                t[p + "mlp.experts.gate_up_proj"] = np.concatenate([gate, up], axis=1)
                t[p + "mlp.experts.down_proj"] = np.stack([g.lin(H, I) for _ in range(E)])
            else:
                t[p + "block_sparse_moe.gate.weight"] = g.lin(E, H, GATE_GAIN)
                for e in range(E):
                    q = p + f"block_sparse_moe.experts.{e}."
                    t[q + "w1.weight"] = g.lin(I, H)
                    t[q + "w2.weight"] = g.lin(H, I)
                    t[q + "w3.weight"] = g.lin(I, H)
        elif arch in ("qwen2_moe", "qwen3_moe"):
            if not is_moe:
                _mlp(t, g, p + "mlp.", H, c["intermediate_size"])
                continue
            E, mi = c["num_experts"], c["moe_intermediate_size"]
            t[p + "mlp.gate.weight"] = g.lin(E, H, GATE_GAIN)
            for e in range(E):
                _mlp(t, g, p + f"mlp.experts.{e}.", H, mi)
            if arch == "qwen2_moe":
                _mlp(t, g, p + "mlp.shared_expert.", H, c["shared_expert_intermediate_size"])
                t[p + "mlp.shared_expert_gate.weight"] = g.lin(1, H)
        elif arch == "olmoe":
            E, I = c["num_experts"], c["intermediate_size"]
            t[p + "mlp.gate.weight"] = g.lin(E, H, GATE_GAIN)
            for e in range(E):
                _mlp(t, g, p + f"mlp.experts.{e}.", H, I)
        elif arch in ("deepseek_v2", "deepseek_v3"):
            if not is_moe:
                _mlp(t, g, p + "mlp.", H, c["intermediate_size"])
            else:
                E, mi = c["n_routed_experts"], c["moe_intermediate_size"]
                t[p + "mlp.gate.weight"] = g.lin(E, H, GATE_GAIN)
                if arch == "deepseek_v3":
                    name = p + "mlp.gate.e_score_correction_bias"
                    t[name] = g.vec(E, 0.1)
                    keep_f32.add(name)
                for e in range(E):
                    _mlp(t, g, p + f"mlp.experts.{e}.", H, mi)
                if c.get("n_shared_experts"):
                    _mlp(t, g, p + "mlp.shared_experts.", H, mi * c["n_shared_experts"])
            if i >= L:  # DeepSeek-V3 MTP module extras (ignored by HF and by the reference)
                t[p + "enorm.weight"] = g.norm(H)
                t[p + "hnorm.weight"] = g.norm(H)
                t[p + "eh_proj.weight"] = g.lin(H, 2 * H)
                t[p + "shared_head.norm.weight"] = g.norm(H)
                t[p + "shared_head.head.weight"] = g.lin(V, H)
                t[p + "embed_tokens.weight"] = g.rng.standard_normal((V, H)).astype(np.float32)
        elif arch == "glm4_moe":
            _glm_ffn(t, g, c, p, is_moe, i >= L, keep_f32)
        elif arch == "moepp":
            ne = c["num_experts"]
            E = ne[0] if isinstance(ne, list) else ne
            I = c["intermediate_size"]
            if not is_moe:
                _mlp(t, g, p + "mlp.", H, I)
                continue
            q = p + "mlp.moe."
            if c.get("moe_2layer_gate", True):
                t[q + "gate.wg.0.weight"] = g.lin(8 * E, H)
                t[q + "gate.wg.2.weight"] = g.lin(E, 8 * E, GATE_GAIN)
            else:
                t[q + "gate.wg.weight"] = g.lin(E, H, GATE_GAIN)
            t[q + "gate.gate_map.weight"] = g.lin(E, E, 0.5)
            for e in range(E - 4):
                t[q + f"experts.experts.{e}.up_proj.weight"] = g.lin(2 * I, H)
                t[q + f"experts.experts.{e}.down_proj.weight"] = g.lin(H, I)
            for e in (E - 4, E - 3):
                t[q + f"experts.experts.{e}.constant"] = g.vec(H, 1.0)
                t[q + f"experts.experts.{e}.wg.weight"] = g.lin(2, H)
        else:
            raise ValueError(arch)
    t["model.norm.weight"] = g.norm(H)
    if not c.get("tie_word_embeddings", False):
        t["lm_head.weight"] = g.lin(V, H)
    return t, keep_f32


def _glm_ffn(t, g, c, p, is_moe, is_mtp, keep_f32):
    """GLM-4.5: a dense MLP, or the gate with its F32 correction bias, routed and shared experts; an MTP
    layer (ignored by HF and the reference) also carries its own norms and projection."""
    H = c["hidden_size"]
    if not is_moe:
        _mlp(t, g, p + "mlp.", H, c["intermediate_size"])
        return
    E, mi = c["n_routed_experts"], c["moe_intermediate_size"]
    t[p + "mlp.gate.weight"] = g.lin(E, H, GATE_GAIN)
    name = p + "mlp.gate.e_score_correction_bias"
    t[name] = g.vec(E, 0.1)
    keep_f32.add(name)
    for e in range(E):
        _mlp(t, g, p + f"mlp.experts.{e}.", H, mi)
    if c.get("n_shared_experts", 1):
        _mlp(t, g, p + "mlp.shared_experts.", H, mi * c.get("n_shared_experts", 1))
    if is_mtp:
        t[p + "enorm.weight"] = g.norm(H)
        t[p + "hnorm.weight"] = g.norm(H)
        t[p + "eh_proj.weight"] = g.lin(H, 2 * H)
        t[p + "shared_head.norm.weight"] = g.norm(H)


def make(arch, out_dir, dtype="F32", shards=1, seed=0, overrides=None, fused_experts=False, eos=None):
    arch = ARCH_ALIASES.get(arch, arch)
    c = base_config(arch)
    for k, v in (overrides or {}).items():
        c[k] = v
    tensors, keep_f32 = build_tensors(arch, c, seed, fused_experts)
    gen = {"bos_token_id": c.get("bos_token_id", 1),
           "eos_token_id": c.get("eos_token_id", 2) if eos is None else eos,
           "do_sample": False}
    write_checkpoint(out_dir, c, tensors, dtype.upper(), shards, gen, keep_f32)
    return c


# ----------------------------------------------------------------------------------------
# standard suite (for the HF cross-check on a machine with torch + transformers)
# ----------------------------------------------------------------------------------------

SUITE_PROMPT = [5, 17, 3, 42, 9, 88, 23, 61, 7, 30, 12]

# name: (arch, dtype, shards, overrides, max_new_tokens, hf_checkable)
SUITE = {
    "mixtral_f32": ("mixtral", "F32", 1, {}, 6, True),
    "mixtral_bf16_sharded": ("mixtral", "BF16", 3, {}, 6, True),
    "mixtral_sliding": ("mixtral", "F32", 1, {"sliding_window": 4}, 6, True),
    "mixtral_tied": ("mixtral", "F32", 1, {"tie_word_embeddings": True}, 6, True),
    "mixtral_rope_linear": ("mixtral", "F32", 1, {"rope_scaling": {"type": "linear", "factor": 2.0}}, 6, True),
    "mixtral_rope_dynamic_below": ("mixtral", "F32", 1,
                                   {"rope_scaling": {"rope_type": "dynamic", "factor": 2.0}}, 6, True),
    # prompt (11) > max_position_embeddings (8): prompt logits are comparable; generation beyond the
    # first token is not (HF keeps keys rotated with the older inv_freq in its cache), so 1 token.
    "mixtral_rope_dynamic_above": ("mixtral", "F32", 1,
                                   {"rope_scaling": {"rope_type": "dynamic", "factor": 2.0},
                                    "max_position_embeddings": 8}, 1, True),
    "mixtral_rope_parameters_v5": ("mixtral", "F32", 1,
                                   {"rope_theta": None, "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e6,
                                                                             "factor": 4.0,
                                                                             "original_max_position_embeddings": 16,
                                                                             "beta_fast": 32, "beta_slow": 1},
                                    "max_position_embeddings": 64}, 6, True),
    "qwen2_moe_f32": ("qwen2_moe", "F32", 1, {}, 6, True),
    "qwen2_moe_bf16_norm_step2": ("qwen2_moe", "BF16", 2,
                                  {"norm_topk_prob": True, "decoder_sparse_step": 2, "mlp_only_layers": []}, 6, True),
    "qwen2_moe_sliding": ("qwen2_moe", "F32", 1,
                          {"use_sliding_window": True, "sliding_window": 4, "max_window_layers": 2,
                           "layer_types": ["sliding_attention", "full_attention", "sliding_attention"]}, 6, True),
    "qwen3_moe_f32": ("qwen3_moe", "F32", 1, {}, 6, True),
    "qwen3_moe_bias_bf16": ("qwen3_moe", "BF16", 1,
                            {"attention_bias": True, "mlp_only_layers": [1], "norm_topk_prob": False}, 6, True),
    "qwen3_moe_sliding": ("qwen3_moe", "F32", 1, {"use_sliding_window": True, "sliding_window": 4}, 6, True),
    "olmoe_f32": ("olmoe", "F32", 1, {}, 6, True),
    "olmoe_clip_bf16": ("olmoe", "BF16", 1, {"clip_qkv": 0.8, "norm_topk_prob": True}, 6, True),
    "deepseek_v2_lite_f32": ("deepseek_v2", "F32", 1, {}, 6, True),
    "deepseek_v2_group_bf16": ("deepseek_v2", "BF16", 2,
                               {"q_lora_rank": 16, "topk_method": "group_limited_greedy", "n_group": 4,
                                "topk_group": 2, "routed_scaling_factor": 2.0}, 6, True),
    "deepseek_v2_yarn_af_rope_parameters": ("deepseek_v2", "F32", 1,
                                            {"rope_scaling": None, "rope_theta": None,
                                             "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4,
                                                                 "factor": 4.0,
                                                                 "original_max_position_embeddings": 64,
                                                                 "beta_fast": 32, "beta_slow": 1,
                                                                 "mscale": 1.0, "mscale_all_dim": 0.8}}, 6, True),
    "deepseek_v3_f32": ("deepseek_v3", "F32", 1, {}, 6, True),
    "deepseek_v3_bf16_sharded": ("deepseek_v3", "BF16", 3, {}, 6, True),
    "deepseek_v3_half_split_rope": ("deepseek_v3", "F32", 1, {"rope_interleave": False}, 6, True),
    "glm4_moe_f32": ("glm4_moe", "F32", 1, {}, 6, True),
    "glm4_moe_bf16_sharded": ("glm4_moe", "BF16", 2, {}, 6, True),
    # GLM-4.5-Air's shape of features: no q/k norm, no biases, one group; the rotary fraction where
    # transformers v5 writes it (rope_parameters), none at the top level
    "glm4_moe_air_rope_parameters_v5": ("glm4_moe", "F32", 1,
                                        {"use_qk_norm": False, "attention_bias": False, "n_group": 1,
                                         "topk_group": 1, "routed_scaling_factor": 1.0, "n_shared_experts": 2,
                                         "head_dim": 16, "rope_theta": None, "partial_rotary_factor": None,
                                         "rope_parameters": {"rope_type": "default", "rope_theta": 1e4,
                                                             "partial_rotary_factor": 0.75}}, 6, True),
    "glm4_moe_yarn_partial": ("glm4_moe", "F32", 1,
                              {"max_position_embeddings": 256, "head_dim": 16, "partial_rotary_factor": 0.5,
                               "rope_scaling": {"type": "yarn", "factor": 4.0,
                                                "original_max_position_embeddings": 64}}, 6, True),
    "moepp_f32": ("moepp", "F32", 1, {}, 6, False),
    "moepp_bf16_1layer_gate": ("moepp", "BF16", 1, {"moe_2layer_gate": False}, 6, False),
    "moepp_mixtral_gating": ("moepp", "F32", 1, {"moe_use_mixtral_gating": True}, 6, False),
    "moepp_logits_norm_no_mul": ("moepp", "F32", 1,
                                 {"moe_use_logits_norm": True, "moe_gate_norm_std": 0.5,
                                  "moe_feature_no_mul_topk": True}, 6, False),
}


def make_suite(out_root, names=None):
    os.makedirs(out_root, exist_ok=True)
    entries = []
    for idx, (name, (arch, dtype, shards, ov, n_new, hf_ok)) in enumerate(SUITE.items()):
        if names and name not in names:
            continue
        ov = {k: v for k, v in ov.items()}
        drop = [k for k, v in ov.items() if v is None and k in ("rope_theta", "rope_scaling", "partial_rotary_factor")]
        d = os.path.join(out_root, name)
        if os.path.isdir(d):
            shutil.rmtree(d)
        c = make(arch, d, dtype, shards, seed=1000 + idx, overrides=ov)
        if drop:  # remove keys instead of writing null (tests the v5 rope_parameters-only spelling)
            with open(os.path.join(d, "config.json")) as f:
                cj = json.load(f)
            for k in drop:
                cj.pop(k, None)
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(cj, f, indent=2)
        entries.append({"name": name, "dir": name, "architecture": c["architectures"][0],
                        "prompt_ids": SUITE_PROMPT, "max_new_tokens": n_new, "ignore_eos": True,
                        "hf_checkable": hf_ok})
    # one entry exercising the eos stop rule (list-valued eos in generation_config.json)
    if not names or "mixtral_eos" in names:
        d = os.path.join(out_root, "mixtral_eos")
        if os.path.isdir(d):
            shutil.rmtree(d)
        make("mixtral", d, "F32", 1, seed=4242)
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import moe_reference  # noqa: E402
        gen, _, _ = moe_reference.ReferenceModel(d).generate(SUITE_PROMPT, 6, ignore_eos=True)
        with open(os.path.join(d, "generation_config.json"), "w") as f:
            json.dump({"bos_token_id": 1, "eos_token_id": [gen[2], 95], "do_sample": False}, f, indent=2)
        entries.append({"name": "mixtral_eos", "dir": "mixtral_eos", "architecture": "MixtralForCausalLM",
                        "prompt_ids": SUITE_PROMPT, "max_new_tokens": 6, "ignore_eos": False,
                        "hf_checkable": True})
    with open(os.path.join(out_root, "suite.json"), "w") as f:
        json.dump({"entries": entries}, f, indent=2)
    return entries


def _parse_set(items):
    out = {}
    for it in items or []:
        if "=" not in it:
            raise SystemExit(f"--set needs key=JSON, got {it!r}")
        k, v = it.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="write tiny random HF-style MoE checkpoints")
    ap.add_argument("arch", nargs="?")
    ap.add_argument("out_dir", nargs="?")
    ap.add_argument("--dtype", default="f32", choices=["f32", "bf16", "f16", "F32", "BF16", "F16"])
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="config override key=JSON")
    ap.add_argument("--fused-experts", action="store_true",
                    help="mixtral only: write transformers-v5 fused expert tensors (test of the loader fallback)")
    ap.add_argument("--suite", metavar="OUT_ROOT", help="write the standard variant suite and suite.json")
    a = ap.parse_args(argv)
    if a.suite:
        for e in make_suite(a.suite):
            print(f"{e['name']:40s} {e['architecture']}")
        return 0
    if not a.arch or not a.out_dir:
        ap.error("ARCH and OUT_DIR are required (or --suite OUT_ROOT)")
    make(a.arch, a.out_dir, a.dtype.upper(), a.shards, a.seed, _parse_set(a.set), a.fused_experts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
