#!/usr/bin/env python3
"""Independent pure-numpy float64 reference forward for the MoE families moe-serve serves.

No torch, no transformers, no safetensors package: this file reads config.json and
*.safetensors itself and recomputes the whole sequence at every generation step (no KV
cache), so that it stays easy to check by eye against the Hugging Face modeling code.

Weights stored as BF16/F16 are widened (BF16 -> F32 exactly, by shifting the 16 bits into
the top half of a uint32) and then everything is computed in float64.

Architectures (config.json `architectures[0]`):
    MixtralForCausalLM, Qwen2MoeForCausalLM, Qwen3MoeForCausalLM, OlmoeForCausalLM,
    DeepseekV2ForCausalLM, DeepseekV3ForCausalLM, GptOssForCausalLM (float or MXFP4 experts), and MoE++ (remote code of
    SkyworkAI/MoE-plus-plus: class `MoeForCausalLM`, config `MoeConfig`, model_type "MoE++").
    Glm4MoeForCausalLM (GLM-4.5 / GLM-4.5-Air) has its own section below the model class.

CLI:
    python3 moe_reference.py MODEL_DIR --prompt-ids 1,2,3 --max-new-tokens N [--ignore-eos]
prints one JSON object (format "moe-serve.generation.v2", see README.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

import numpy as np

FORMAT = "moe-serve.generation.v2"

# ----------------------------------------------------------------------------------------
# safetensors (minimal reader)
# ----------------------------------------------------------------------------------------

_ST_DTYPES = {
    "F64": ("<f8", 8),
    "F32": ("<f4", 4),
    "F16": ("<f2", 2),
    "BF16": ("<u2", 2),
    "I64": ("<i8", 8),
    "I32": ("<i4", 4),
    "I16": ("<i2", 2),
    "I8": ("i1", 1),
    "U8": ("u1", 1),
    "BOOL": ("?", 1),
    "F8_E4M3": ("u1", 1),
}


def read_safetensors_header(path):
    """Return (header dict without __metadata__, metadata dict, absolute offset of the data)."""
    with open(path, "rb") as f:
        raw_len = f.read(8)
        if len(raw_len) != 8:
            raise ValueError(f"{path}: file too short for a safetensors header")
        (n,) = np.frombuffer(raw_len, dtype="<u8")
        n = int(n)
        header = json.loads(f.read(n).decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    return header, meta, 8 + n


def bf16_bits_to_f32(u16):
    """uint16 array of bfloat16 bit patterns -> float32 array (exact)."""
    u16 = np.ascontiguousarray(u16, dtype="<u2")
    return (u16.astype("<u4") << 16).view("<f4")


class SafetensorsFile:
    def __init__(self, path):
        self.path = path
        self.header, self.metadata, self.data_start = read_safetensors_header(path)
        self._mm = None

    def names(self):
        return list(self.header.keys())

    def info(self, name):
        return self.header[name]

    def _memmap(self):
        if self._mm is None:
            self._mm = np.memmap(self.path, dtype="u1", mode="r")
        return self._mm

    def raw(self, name):
        """The tensor exactly as stored (BF16 returned as its uint16 bit patterns)."""
        info = self.header[name]
        dtype = info["dtype"]
        if dtype not in _ST_DTYPES:
            raise ValueError(f"{self.path}: tensor {name}: unsupported dtype {dtype}")
        np_dtype, itemsize = _ST_DTYPES[dtype]
        begin, end = info["data_offsets"]
        shape = tuple(int(s) for s in info["shape"])
        count = int(np.prod(shape)) if shape else 1
        if end - begin != count * itemsize:
            raise ValueError(f"{self.path}: tensor {name}: byte range {begin}..{end} does not fit "
                             f"shape {shape} of {dtype}")
        buf = self._memmap()[self.data_start + begin:self.data_start + end]
        return np.frombuffer(buf.tobytes(), dtype=np_dtype).reshape(shape), dtype

    def get_f64(self, name):
        arr, dtype = self.raw(name)
        if dtype == "BF16":
            arr = bf16_bits_to_f32(arr)
        return np.asarray(arr, dtype=np.float64)


def e4m3_table():
    """float8_e4m3fn byte -> value (PyTorch c10/util/Float8_e4m3fn.h): bias 7, subnormals, NaN at 0x7f/0xff."""
    t = np.zeros(256, dtype=np.float32)
    for b in range(256):
        s, e, m = b >> 7, (b >> 3) & 0xF, b & 7
        if e == 15 and m == 7:
            v = np.nan
        elif e == 0:
            v = m / 8.0 * 2.0 ** -6
        else:
            v = (1 + m / 8.0) * 2.0 ** (e - 7)
        t[b] = -v if s else v
    return t


E4M3 = e4m3_table()


class Quantization:
    """quantization_config of config.json: which linear weights are stored quantized, and how.

    Dequantization follows the formats' reference code, in float32 as they compute it, then widened:
    fp8 (DeepSeek-V3 inference/kernel.py weight_dequant): W = fp8(q) * scale_inv[i // bm, j // bn];
    compressed-tensors (lifecycle/forward.py _dequantize, compressors/pack_quantized.py unpack_from_int32):
    W = (q - zp) * scale, q unpacked LSB-first along the input dimension and re-signed by -2^(b-1).
    """

    def __init__(self, qc):
        self.qc = qc or {}
        self.method = self.qc.get("quant_method")
        # mxfp4 (gpt-oss) quantizes only the fused experts' *_blocks/*_scales, which the family reads itself.
        if self.method not in (None, "fp8", "compressed-tensors", "mxfp4"):
            raise ValueError(f"quant_method {self.method!r} is not supported by the reference")

    def _scheme(self, module):
        if self.method == "fp8":
            ignore = ["lm_head"] + list(self.qc.get("modules_to_not_convert") or [])
            if any(module == m or module.startswith(m + ".") for m in ignore):
                return None
            bm, bn = self.qc.get("weight_block_size") or [128, 128]
            return {"kind": "fp8", "block": (bm, bn), "symmetric": True}
        if self.method == "compressed-tensors":
            def match(entries):
                for e in entries:
                    if e.startswith("re:"):
                        if re.match(e[3:], module):
                            return True
                    elif e == module or e == "Linear":
                        return True
                return False
            if match(self.qc.get("ignore") or []):
                return None
            for g in self.qc["config_groups"].values():
                w = g.get("weights")
                if w and match(g.get("targets") or []):
                    fmt = g.get("format") or self.qc.get("format")
                    gs = w.get("group_size")
                    strategy = w.get("strategy") or ("tensor" if gs is None else "channel" if gs == -1 else "group")
                    block = {"tensor": (None, None), "channel": (1, None), "group": (1, gs),
                             "block": tuple(w.get("block_structure") or (0, 0))}[strategy]
                    return {"kind": fmt, "bits": w.get("num_bits", 8), "type": w.get("type", "int"),
                            "block": block, "symmetric": w.get("symmetric", True)}
        return None

    def dequantize(self, ckpt, name):
        """The float64 weight `name` (a .weight) if stored quantized, else None."""
        if self.method in (None, "mxfp4") or not name.endswith(".weight"):
            return None
        module = name[:-len(".weight")]
        sch = self._scheme(module)
        if sch is None:
            return None
        if sch["kind"] == "fp8" or sch["kind"] in ("float-quantized", "int-quantized", "naive-quantized"):
            if not ckpt.has(name):
                return None
            arr, dtype = ckpt.raw(name)
            if dtype in ("F32", "BF16", "F16"):
                return None
            scale_name = name + ("_scale_inv" if sch["kind"] == "fp8" else "_scale")
            q = E4M3[arr] if dtype == "F8_E4M3" else arr.astype(np.float32)
            rows, cols = arr.shape
        else:  # pack-quantized
            packed, _ = ckpt.raw(name + "_packed")
            shape, _ = ckpt.raw(name + "_shape")
            rows, cols = int(shape[0]), int(shape[1])
            bits = sch["bits"]
            per = 32 // bits
            words = packed.astype(np.int64) & 0xFFFFFFFF
            q = np.zeros((rows, words.shape[1] * per), dtype=np.int64)
            for t in range(per):
                q[:, t::per] = (words >> (bits * t)) & ((1 << bits) - 1)
            q = (q[:, :cols] - (1 << (bits - 1))).astype(np.float32)
            scale_name = name + "_scale"
        scale = ckpt.get_f64(scale_name).astype(np.float32)
        bm, bn = sch["block"]
        bm = rows if bm is None else bm
        bn = cols if bn is None else bn
        scale = scale.reshape(-(-rows // bm), -(-cols // bn))
        s = np.repeat(np.repeat(scale, bm, axis=0), bn, axis=1)[:rows, :cols]
        if not sch["symmetric"]:
            zp_raw, zdtype = ckpt.raw(name + "_zero_point")
            if sch["kind"] == "pack-quantized":
                bits = sch["bits"]
                per = 32 // bits
                zw = zp_raw.astype(np.int64) & 0xFFFFFFFF
                z = np.zeros((zw.shape[0] * per, zw.shape[1]), dtype=np.int64)
                for t in range(per):
                    z[t::per, :] = (zw >> (bits * t)) & ((1 << bits) - 1)
                z = z[:scale.shape[0]] - (1 << (bits - 1))
            else:
                z = zp_raw.astype(np.int64).reshape(scale.shape)
            zz = np.repeat(np.repeat(z, bm, axis=0), bn, axis=1)[:rows, :cols].astype(np.float32)
            q = q - zz
        w = (q.astype(np.float32) * s.astype(np.float32)).astype(np.float32)
        ckpt.used.update(n for n in (name, name + "_packed", name + "_shape", scale_name, name + "_zero_point")
                         if ckpt.has(n))
        return w.astype(np.float64)


FP4_E2M1 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])


def mxfp4_dequantize(ckpt, name, shape):
    """MXFP4 as transformers' convert_moe_packed_tensors reads it: name_blocks U8 [..., rows, cols/32, 16] (element
    2k of a group in byte k's low nibble, 2k+1 in its high nibble) and name_scales U8 [..., rows, cols/32], an E8M0
    exponent per group of 32: w = FP4[code] * 2^(scale - 127). Returns float64 [..., rows, cols] (output-major)."""
    blocks, bt = ckpt.raw(name + "_blocks")
    scales, st = ckpt.raw(name + "_scales")
    if bt != "U8" or st != "U8":
        raise ValueError(f"{name}: MXFP4 blocks and scales are U8, not {bt} / {st}")
    *lead, rows, cols = shape
    groups = cols // 32
    if cols % 32 or tuple(blocks.shape) != (*lead, rows, groups, 16) or tuple(scales.shape) != (*lead, rows, groups):
        raise ValueError(f"{name}: blocks {blocks.shape} / scales {scales.shape} do not fit {shape}")
    if np.any(scales == 255):
        raise ValueError(f"{name}_scales holds 0xFF (NaN in E8M0)")
    b = blocks.astype(np.int64)
    codes = np.empty((*lead, rows, groups, 32), dtype=np.int64)
    codes[..., 0::2] = b & 0x0F
    codes[..., 1::2] = b >> 4
    w = FP4_E2M1[codes] * np.exp2(scales.astype(np.float64) - 127.0)[..., None]
    ckpt.used.update((name + "_blocks", name + "_scales"))
    return w.reshape(shape)


class Checkpoint:
    """model.safetensors, or shards listed in model.safetensors.index.json (weight_map)."""

    def __init__(self, model_dir):
        self.model_dir = model_dir
        index_path = os.path.join(model_dir, "model.safetensors.index.json")
        single_path = os.path.join(model_dir, "model.safetensors")
        self.files = {}
        self.where = {}
        if os.path.exists(index_path):
            with open(index_path) as f:
                weight_map = json.load(f)["weight_map"]
            for name, fname in weight_map.items():
                if fname not in self.files:
                    self.files[fname] = SafetensorsFile(os.path.join(model_dir, fname))
                if name not in self.files[fname].header:
                    raise ValueError(f"index says {name} is in {fname}, but that file has no such tensor")
                self.where[name] = fname
        elif os.path.exists(single_path):
            self.files["model.safetensors"] = SafetensorsFile(single_path)
            for name in self.files["model.safetensors"].names():
                self.where[name] = "model.safetensors"
        else:
            raise FileNotFoundError(f"{model_dir}: neither model.safetensors nor model.safetensors.index.json")
        self._cache = {}
        self.used = set()
        cfg_path = os.path.join(model_dir, "config.json")
        qc = None
        if os.path.exists(cfg_path):
            with open(cfg_path) as f:
                qc = json.load(f).get("quantization_config")
        self.quantization = Quantization(qc)

    def has(self, name):
        return name in self.where

    def has_weight(self, name):
        """Whether weight `name` is there, as itself or as pack-quantized codes (name + "_packed")."""
        return name in self.where or (name + "_packed") in self.where

    def raw(self, name):
        return self.files[self.where[name]].raw(name)

    def get_f64(self, name):
        return self.files[self.where[name]].get_f64(name)

    def names(self):
        return list(self.where.keys())

    def get(self, name, shape=None):
        if name not in self._cache:
            w = self.quantization.dequantize(self, name)
            if w is not None:
                self._cache[name] = w
        if name not in self._cache and name not in self.where:
            raise KeyError(f"tensor {name!r} not found in checkpoint {self.model_dir}")
        if name in self.where:
            self.used.add(name)
        if name not in self._cache:
            self._cache[name] = self.files[self.where[name]].get_f64(name)
        arr = self._cache[name]
        if shape is not None and tuple(arr.shape) != tuple(shape):
            raise ValueError(f"tensor {name}: shape {tuple(arr.shape)}, expected {tuple(shape)}")
        return arr

    def get_opt(self, name, shape=None):
        return self.get(name, shape) if self.has(name) or self.has(name + "_packed") else None


# ----------------------------------------------------------------------------------------
# small math helpers (all float64)
# ----------------------------------------------------------------------------------------

def rms_norm(x, w, eps):
    var = np.mean(x * x, axis=-1, keepdims=True)
    return w * (x / np.sqrt(var + eps))


def silu(x):
    return x / (1.0 + np.exp(-x))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def linear(x, w, b=None):
    y = x @ w.T
    if b is not None:
        y = y + b
    return y


def topk_desc(values, k):
    """Indices of the k largest entries per row, descending; ties -> lowest index first."""
    order = np.argsort(-values, axis=-1, kind="stable")
    return order[..., :k]


ACTIVATIONS = {"silu": silu, "swish": silu}


def activation(name):
    if name not in ACTIVATIONS:
        raise NotImplementedError(f"hidden_act {name!r} is not supported (only silu)")
    return ACTIVATIONS[name]


# ----------------------------------------------------------------------------------------
# RoPE
# ----------------------------------------------------------------------------------------

def yarn_get_mscale(scale, mscale=1.0):
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def yarn_correction_range(beta_fast, beta_slow, dim, base, original_max_pos, truncate=True):
    def corr_dim(num_rotations):
        return (dim * math.log(original_max_pos / (num_rotations * 2 * math.pi))) / (2 * math.log(base))

    low, high = corr_dim(beta_fast), corr_dim(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0), min(high, dim - 1)


def yarn_parameters(base, dim, factor, original_max_pos, beta_fast=None, beta_slow=None,
                    mscale=None, mscale_all_dim=None, attention_factor=None, truncate=True):
    """HF `_compute_yarn_parameters`: returns (inv_freq [dim/2], attention_factor, (low, high))."""
    if attention_factor is None:
        if mscale and mscale_all_dim:
            attention_factor = float(yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim))
        else:
            attention_factor = yarn_get_mscale(factor)
    beta_fast = beta_fast or 32
    beta_slow = beta_slow or 1
    low, high = yarn_correction_range(beta_fast, beta_slow, dim, base, original_max_pos, truncate)
    j = np.arange(0, dim, 2, dtype=np.float64)
    pos_freqs = base ** (j / dim)
    inv_extra = 1.0 / pos_freqs
    inv_inter = 1.0 / (factor * pos_freqs)
    hi = high + 0.001 if low == high else high
    ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (hi - low), 0.0, 1.0)
    extra_factor = 1.0 - ramp
    inv_freq = inv_inter * (1.0 - extra_factor) + inv_extra * extra_factor
    return inv_freq, float(attention_factor), (low, high)


class RopeSpec:
    """Resolved RoPE parameters of a config, independent of the spelling used in config.json."""

    def __init__(self, rope_type, theta, params, max_position_embeddings, top_level_original_max=None):
        self.rope_type = rope_type
        self.theta = float(theta)
        self.params = params
        self.max_position_embeddings = max_position_embeddings
        self.top_level_original_max = top_level_original_max

    def inv_freq(self, dim, seq_len):
        """(inv_freq [dim/2], attention_factor) for a forward pass over positions 0..seq_len-1."""
        base = self.theta
        exps = np.arange(0, dim, 2, dtype=np.float64) / dim
        t = self.rope_type
        if t == "default":
            return 1.0 / (base ** exps), 1.0
        if t == "linear":
            return (1.0 / (base ** exps)) / float(self.params["factor"]), 1.0
        if t == "ntk":  # MoE++ remote code only: static NTK, base * factor
            return 1.0 / ((base * float(self.params["factor"])) ** exps), 1.0
        if t == "dynamic":
            # HF: inv_freq is recomputed only when the sequence grows past max_position_embeddings,
            # with seq_len = max(position_ids) + 1; below that it is the plain default RoPE.
            factor = float(self.params["factor"])
            mpe = self.max_position_embeddings
            s = max(seq_len, mpe)
            b = base * ((factor * s / mpe) - (factor - 1)) ** (dim / (dim - 2))
            return 1.0 / (b ** exps), 1.0
        if t == "yarn":
            p = self.params
            if self.top_level_original_max is not None:
                l0 = self.top_level_original_max
            elif p.get("original_max_position_embeddings") is not None:
                l0 = p["original_max_position_embeddings"]
            else:
                l0 = self.max_position_embeddings
            factor = p.get("factor")
            if factor is None:
                factor = self.max_position_embeddings / l0
            inv, af, _ = yarn_parameters(base, dim, float(factor), float(l0), p.get("beta_fast"),
                                         p.get("beta_slow"), p.get("mscale"), p.get("mscale_all_dim"),
                                         p.get("attention_factor"), p.get("truncate", True))
            return inv, af
        raise NotImplementedError(f"rope type {t!r} is not supported")


def resolve_rope(cfg, default_theta, moepp=False):
    """Accept the three spellings: rope_theta + rope_scaling{type|rope_type}, or v5 rope_parameters."""
    rs = cfg.get("rope_scaling")
    rp = cfg.get("rope_parameters")
    params = rs if rs else (rp if rp else {})
    if not isinstance(params, dict):
        raise ValueError(f"rope_scaling/rope_parameters must be an object, got {params!r}")
    layer_types = cfg.get("layer_types")
    if params and layer_types and set(params.keys()) <= set(layer_types):
        raise NotImplementedError("per-layer-type rope_parameters are not supported by this reference")
    params = dict(params)
    rope_type = params.get("rope_type") or params.get("type") or "default"
    theta = params.get("rope_theta")
    if theta is None:
        theta = cfg.get("rope_theta")
    if theta is None and rp:
        theta = rp.get("rope_theta")
    if theta is None:
        theta = default_theta
    allowed = {"default", "linear", "dynamic", "yarn"}
    if moepp:
        allowed = {"default", "linear", "dynamic", "ntk"}
    if rope_type not in allowed:
        raise NotImplementedError(f"rope type {rope_type!r} not supported here (supported: {sorted(allowed)})")
    return RopeSpec(rope_type, theta, params, int(cfg["max_position_embeddings"]),
                    cfg.get("original_max_position_embeddings"))


def rope_angles(inv_freq, positions):
    return np.outer(np.asarray(positions, dtype=np.float64), inv_freq)  # [T, dim/2]


def apply_rope_half(x, ang, af):
    """Half-split (NeoX) pairing: element i pairs with i + d/2. x: [T, n, d]."""
    d = x.shape[-1]
    h = d // 2
    cos = (np.cos(ang) * af)[:, None, :]
    sin = (np.sin(ang) * af)[:, None, :]
    x1, x2 = x[..., :h], x[..., h:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def apply_rope_interleaved(x, ang, af):
    """Interleaved pairing: (2i, 2i+1) is a pair rotated by inv_freq[i]. x: [T, n, d]."""
    cos = (np.cos(ang) * af)[:, None, :]
    sin = (np.sin(ang) * af)[:, None, :]
    xe, xo = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = xe * cos - xo * sin
    out[..., 1::2] = xo * cos + xe * sin
    return out


# ----------------------------------------------------------------------------------------
# attention core
# ----------------------------------------------------------------------------------------

def attention_core(q, k, v, scale, window=None, sinks=None):
    """q [T,nh,dq], k [T,nkv,dq], v [T,nkv,dv] -> [T,nh,dv]; causal, optional sliding window W
    (query i sees keys j with i - W < j <= i, as HF's sliding_window_overlay), optional attention sinks
    [nh] (gpt-oss eager_attention_forward: the sink is one more logit in each row's softmax, then dropped)."""
    T, nh, _ = q.shape
    nkv = k.shape[1]
    if nh % nkv:
        raise ValueError(f"num heads {nh} not a multiple of kv heads {nkv}")
    rep = nh // nkv
    k = np.repeat(k, rep, axis=1)
    v = np.repeat(v, rep, axis=1)
    scores = np.einsum("ihd,jhd->hij", q, k) * scale
    i = np.arange(T)[:, None]
    j = np.arange(T)[None, :]
    allowed = j <= i
    if window is not None:
        allowed &= j > i - window
    scores = np.where(allowed[None, :, :], scores, -np.inf)
    if sinks is not None:
        col = np.broadcast_to(np.asarray(sinks, dtype=np.float64)[:, None, None], (nh, T, 1))
        p = softmax(np.concatenate([scores, col], axis=-1), axis=-1)[..., :-1]
    else:
        p = softmax(scores, axis=-1)
    return np.einsum("hij,jhd->ihd", p, v)


# ----------------------------------------------------------------------------------------
# routing functions (pure; unit-tested directly)
# ----------------------------------------------------------------------------------------

def route_softmax_topk(logits, top_k, renormalize):
    """Mixtral / Qwen2-MoE / Qwen3-MoE / OLMoE: softmax over all experts, top-k, optional renorm."""
    p = softmax(logits, axis=-1)
    idx = topk_desc(p, top_k)
    w = np.take_along_axis(p, idx, axis=-1)
    if renormalize:
        w = w / np.sum(w, axis=-1, keepdims=True)
    return idx, w


def _group_keep_mask(group_scores, topk_group):
    keep = topk_desc(group_scores, topk_group)
    mask = np.zeros_like(group_scores, dtype=bool)
    np.put_along_axis(mask, keep, True, axis=-1)
    return mask


def route_deepseek_v2(logits, top_k, topk_method, n_group, topk_group, norm_topk_prob, routed_scaling_factor):
    """Original DeepSeek-V2 MoEGate (softmax scoring)."""
    s = softmax(logits, axis=-1)
    T, E = s.shape
    if topk_method == "greedy":
        choice = s
    elif topk_method == "group_limited_greedy":
        if not n_group or E % n_group:
            raise ValueError(f"group_limited_greedy needs n_group dividing {E}, got {n_group}")
        gs = s.reshape(T, n_group, E // n_group).max(axis=-1)
        mask = _group_keep_mask(gs, topk_group)
        choice = np.where(np.repeat(mask, E // n_group, axis=-1), s, 0.0)
    else:
        raise NotImplementedError(f"DeepSeek-V2 topk_method {topk_method!r}")
    idx = topk_desc(choice, top_k)
    w = np.take_along_axis(s, idx, axis=-1)
    if top_k > 1 and norm_topk_prob:
        w = w / (np.sum(w, axis=-1, keepdims=True) + 1e-20)
    else:
        w = w * routed_scaling_factor
    return idx, w


def route_deepseek_v3(logits, bias, top_k, n_group, topk_group, norm_topk_prob, routed_scaling_factor):
    """HF DeepseekV3MoE.route_tokens_to_experts (noaux_tc): sigmoid, bias for selection only,
    group score = sum of top-2 biased scores, keep topk_group groups, mask others with 0.0."""
    s = sigmoid(logits)
    T, E = s.shape
    if not n_group or E % n_group:
        raise ValueError(f"n_group {n_group} must divide n_routed_experts {E}")
    gsz = E // n_group
    if gsz < 2:
        raise ValueError("DeepSeek-V3 routing needs at least 2 experts per group")
    sc = s + bias[None, :]
    grouped = np.sort(sc.reshape(T, n_group, gsz), axis=-1)
    group_scores = grouped[..., -1] + grouped[..., -2]
    mask = _group_keep_mask(group_scores, topk_group)
    choice = np.where(np.repeat(mask, gsz, axis=-1), sc, 0.0)
    idx = topk_desc(choice, top_k)
    w = np.take_along_axis(s, idx, axis=-1)
    if norm_topk_prob:
        w = w / (np.sum(w, axis=-1, keepdims=True) + 1e-20)
    w = w * routed_scaling_factor
    return idx, w


MOEPP_TOP_K = 2
MOEPP_N_CONSTANT = 2


def route_moepp(logits, mixtral_gating, logits_norm, norm_std):
    """MoE++ `gating` (moe_plus_plus_layer.py). Returns (idx [T,2], gates [T,2])."""
    E = logits.shape[-1]
    if mixtral_gating:
        if logits_norm:
            logits = logits / (np.std(logits, axis=-1, ddof=1, keepdims=True) / norm_std)
        idx = topk_desc(logits, MOEPP_TOP_K)
        g = softmax(np.take_along_axis(logits, idx, axis=-1), axis=-1)
        return idx, g
    if logits_norm:
        p = softmax(logits / (np.std(logits, axis=-1, ddof=1, keepdims=True) / norm_std), axis=-1)
    else:
        p = softmax(logits, axis=-1)
    idx = topk_desc(p, MOEPP_TOP_K)
    g = np.take_along_axis(p, idx, axis=-1)
    g = np.where(idx == E - 1, 0.0, g)
    g = g / np.sum(g, axis=-1, keepdims=True)
    return idx, g


# ----------------------------------------------------------------------------------------
# families
# ----------------------------------------------------------------------------------------

MIXTRAL = "MixtralForCausalLM"
QWEN2 = "Qwen2MoeForCausalLM"
QWEN3 = "Qwen3MoeForCausalLM"
OLMOE = "OlmoeForCausalLM"
DSV2 = "DeepseekV2ForCausalLM"
DSV3 = "DeepseekV3ForCausalLM"
MOEPP = "MoeForCausalLM"  # SkyworkAI/MoE-plus-plus modeling_moe_plus_plus.py; model_type "MoE++"
MOEPP_ALIASES = {"MoeForCausalLM", "MoEPlusPlusForCausalLM"}
GPTOSS = "GptOssForCausalLM"

SUPPORTED = [MIXTRAL, QWEN2, QWEN3, OLMOE, DSV2, DSV3, MOEPP, GPTOSS]

GLM4_MOE = "Glm4MoeForCausalLM"  # GLM-4.5 / GLM-4.5-Air: its functions are in the GLM-4.5 section below
SUPPORTED.append(GLM4_MOE)


def detect_family(cfg):
    archs = cfg.get("architectures") or []
    arch = archs[0] if archs else None
    if cfg.get("model_type") == "MoE++" or arch in MOEPP_ALIASES:
        return MOEPP, arch or MOEPP
    if arch in SUPPORTED:
        return arch, arch
    by_type = {"mixtral": MIXTRAL, "qwen2_moe": QWEN2, "qwen3_moe": QWEN3, "olmoe": OLMOE,
               "deepseek_v2": DSV2, "deepseek_v3": DSV3, "gpt_oss": GPTOSS}
    if arch is None and cfg.get("model_type") in by_type:
        fam = by_type[cfg["model_type"]]
        return fam, fam
    raise NotImplementedError(f"unsupported architecture {arch!r} (model_type {cfg.get('model_type')!r}); "
                              f"supported: {SUPPORTED}")


def _first(cfg, *keys, default=None):
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    return default


class ReferenceModel:
    def __init__(self, model_dir, strict=False):
        self.model_dir = model_dir
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = json.load(f)
        self.family, self.architecture = detect_family(self.cfg)
        self.ckpt = Checkpoint(model_dir)
        self.strict = strict
        self._checked_coverage = False
        c = self.cfg
        f = self.family
        self.H = int(c["hidden_size"])
        self.L = int(c["num_hidden_layers"])
        self.V = int(c["vocab_size"])
        self.nh = int(c["num_attention_heads"])
        self.nkv = int(c.get("num_key_value_heads") or self.nh)
        self.act = activation(c.get("hidden_act", "silu"))
        if f == GLM4_MOE:
            glm_configure(self)  # all of GLM-4.5's settings, in its section below
            return
        eps_default = {MIXTRAL: 1e-5, QWEN2: 1e-6, QWEN3: 1e-6, OLMOE: 1e-5, DSV2: 1e-6, DSV3: 1e-6, MOEPP: 1e-6,
                       GPTOSS: 1e-5}[f]
        self.eps = float(c.get("rms_norm_eps", eps_default))
        self.tie = bool(c.get("tie_word_embeddings", False))
        default_theta = {MIXTRAL: 1e6, GPTOSS: 150000.0}.get(f, 1e4)
        self.rope = resolve_rope(c, default_theta, moepp=(f == MOEPP))
        if f in (DSV2, DSV3):
            self.head_dim = None
            self.rope_dim = int(c.get("qk_rope_head_dim", 64))
        elif f == MOEPP:
            self.head_dim = self.H // self.nh  # MoE++ Attention ignores any head_dim key
            self.rope_dim = self.head_dim
        else:
            self.head_dim = int(c.get("head_dim") or self.H // self.nh)
            self.rope_dim = self.head_dim
        if c.get("partial_rotary_factor") not in (None, 1, 1.0):
            raise NotImplementedError("partial_rotary_factor != 1 is not supported")
        self._setup_family()

    # --- per family config ---------------------------------------------------------------
    def _setup_family(self):
        c, f = self.cfg, self.family
        self.moe_layers = set()
        self.window = [None] * self.L
        if f == MIXTRAL:
            self.E = int(_first(c, "num_local_experts", "num_experts"))
            self.k = int(c["num_experts_per_tok"])
            self.I = int(c["intermediate_size"])
            self.moe_layers = set(range(self.L))
            sw = c.get("sliding_window")
            if sw is not None:
                self.window = [int(sw)] * self.L
        elif f in (QWEN2, QWEN3):
            self.E = int(_first(c, "num_experts", "num_local_experts", default=0))
            self.k = int(c["num_experts_per_tok"])
            self.norm_topk = bool(c.get("norm_topk_prob", False))
            step = int(c.get("decoder_sparse_step", 1) or 1)
            mlp_only = set(c.get("mlp_only_layers") or [])
            for i in range(self.L):
                if i not in mlp_only and self.E > 0 and (i + 1) % step == 0:
                    self.moe_layers.add(i)
            if f == QWEN2:
                self.qkv_bias = bool(c.get("qkv_bias", True))
                layer_types = c.get("layer_types")
                if layer_types is None:
                    use_sw = bool(c.get("use_sliding_window", False))
                    mwl = int(c.get("max_window_layers", 28))
                    # transformers v5 Qwen2MoeConfig.__post_init__ rule
                    layer_types = ["sliding_attention" if ((i + 1) % 2 and i < mwl and use_sw)
                                   else "full_attention" for i in range(self.L)]
                if len(layer_types) != self.L:
                    raise ValueError("layer_types length differs from num_hidden_layers")
                sw = c.get("sliding_window")
                for i, t in enumerate(layer_types):
                    if t == "sliding_attention":
                        # HF sets sliding_window = 0 unless use_sliding_window: refuse that case
                        if not sw or not c.get("use_sliding_window", False):
                            raise ValueError("sliding_attention layer needs use_sliding_window=true and sliding_window")
                        self.window[i] = int(sw)
                    elif t != "full_attention":
                        raise NotImplementedError(f"layer type {t!r}")
            else:
                self.attn_bias = bool(c.get("attention_bias", False))
                if c.get("use_sliding_window", False) and c.get("sliding_window") is not None:
                    self.window = [int(c["sliding_window"])] * self.L
        elif f == OLMOE:
            self.E = int(_first(c, "num_experts", "num_local_experts"))
            self.k = int(c["num_experts_per_tok"])
            self.I = int(c["intermediate_size"])
            self.norm_topk = bool(c.get("norm_topk_prob", False))
            self.attn_bias = bool(c.get("attention_bias", False))
            self.clip_qkv = c.get("clip_qkv")
            self.moe_layers = set(range(self.L))
        elif f in (DSV2, DSV3):
            v3 = f == DSV3
            self.E = c.get("n_routed_experts")
            self.k = c.get("num_experts_per_tok")
            self.q_lora_rank = c.get("q_lora_rank", 1536)
            self.kv_lora_rank = int(c.get("kv_lora_rank", 512))
            self.qk_nope = int(c.get("qk_nope_head_dim", 128))
            self.qk_rope = int(c.get("qk_rope_head_dim", 64))
            self.v_head = int(c.get("v_head_dim", 128))
            self.attn_bias = bool(c.get("attention_bias", False))
            self.n_shared = c.get("n_shared_experts", 1 if v3 else 2)
            self.routed_scale = float(c.get("routed_scaling_factor", 2.5 if v3 else 1.0))
            self.norm_topk = bool(c.get("norm_topk_prob", True if v3 else False))
            self.n_group = c.get("n_group", 8 if v3 else None)
            self.topk_group = c.get("topk_group", 4 if v3 else None)
            self.topk_method = c.get("topk_method", "noaux_tc" if v3 else "greedy")
            scoring = c.get("scoring_func", "sigmoid" if v3 else "softmax")
            if v3 and (scoring != "sigmoid" or self.topk_method != "noaux_tc"):
                raise NotImplementedError(f"DeepSeek-V3 with scoring_func={scoring!r} topk_method="
                                          f"{self.topk_method!r}: HF implements only sigmoid/noaux_tc")
            if not v3 and scoring != "softmax":
                raise NotImplementedError(f"DeepSeek-V2 scoring_func {scoring!r}")
            self.rope_interleave = bool(c.get("rope_interleave", True)) if v3 else True
            fkd = int(c.get("first_k_dense_replace", 3 if v3 else 0))
            freq = int(c.get("moe_layer_freq", 1) or 1)
            for i in range(self.L):
                if self.E is not None and i >= fkd and i % freq == 0:
                    self.moe_layers.add(i)
            self.qk_head = self.qk_nope + self.qk_rope
            scale = self.qk_head ** -0.5
            rp = self.rope.params
            if self.rope.rope_type != "default":
                mad = rp.get("mscale_all_dim", 0)
                if mad:
                    m = yarn_get_mscale(float(rp["factor"]), float(mad))
                    scale = scale * m * m
            self.softmax_scale = scale
        elif f == MOEPP:
            ne = c.get("num_experts", [32])
            self.E = int(ne[0] if isinstance(ne, (list, tuple)) else ne)
            if self.E < 2 + MOEPP_N_CONSTANT + 1:
                raise ValueError("MoE++ needs at least 5 experts (FFN + 2 constant + copy + zero)")
            self.k = MOEPP_TOP_K
            self.I = int(c["intermediate_size"])
            interval = int(c.get("moe_expert_interval", 1))
            for i in range(self.L):
                if interval == 1 or (i + 1) % interval == 0:
                    self.moe_layers.add(i)
            self.mixtral_gating = bool(c.get("moe_use_mixtral_gating", False))
            self.two_layer_gate = bool(c.get("moe_2layer_gate", True))
            self.logits_norm = bool(c.get("moe_use_logits_norm", False))
            self.norm_std = float(c.get("moe_gate_norm_std", 1.0))
            self.no_mul_topk = bool(c.get("moe_feature_no_mul_topk", False))
        elif f == GPTOSS:
            # HF GptOssConfig: layer_types default to sliding on even layers; every layer is MoE.
            self.E = int(_first(c, "num_local_experts", "num_experts"))
            self.k = int(_first(c, "num_experts_per_tok", "experts_per_token"))
            self.I = int(c["intermediate_size"])
            self.moe_layers = set(range(self.L))
            self.attn_bias = bool(c.get("attention_bias", True))
            self.swiglu_limit = float(c.get("swiglu_limit", 7.0))
            sw = int(c.get("sliding_window") or 128)
            types = c.get("layer_types") or ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(self.L)]
            for i, t in enumerate(types):
                if t == "sliding_attention":
                    self.window[i] = sw
                elif t != "full_attention":
                    raise NotImplementedError(f"layer type {t!r}")
        else:  # pragma: no cover
            raise AssertionError(f)

    # --- weights helpers -----------------------------------------------------------------
    def W(self, name, shape=None):
        return self.ckpt.get(name, shape)

    def _bias(self, name, enabled, size):
        if not enabled:
            return None
        return self.W(name, (size,))

    def _swiglu_mlp(self, x, p, inter):
        g = linear(x, self.W(p + "gate_proj.weight", (inter, self.H)))
        u = linear(x, self.W(p + "up_proj.weight", (inter, self.H)))
        return linear(self.act(g) * u, self.W(p + "down_proj.weight", (self.H, inter)))

    def _expert_weights(self, prefix, e, inter, style):
        """(gate [I,H], up [I,H], down [H,I]) of routed expert e; accepts the on-disk per-expert
        names and, as a fallback, transformers-v5 fused `experts.gate_up_proj [E,2I,H]` /
        `experts.down_proj [E,H,I]` (gate rows first)."""
        if style == "mixtral":
            names = (f"{prefix}block_sparse_moe.experts.{e}.w1.weight",
                     f"{prefix}block_sparse_moe.experts.{e}.w3.weight",
                     f"{prefix}block_sparse_moe.experts.{e}.w2.weight")
        else:
            names = (f"{prefix}mlp.experts.{e}.gate_proj.weight",
                     f"{prefix}mlp.experts.{e}.up_proj.weight",
                     f"{prefix}mlp.experts.{e}.down_proj.weight")
        if self.ckpt.has_weight(names[0]):
            return (self.W(names[0], (inter, self.H)), self.W(names[1], (inter, self.H)),
                    self.W(names[2], (self.H, inter)))
        fused_gu = None
        for p in (f"{prefix}mlp.experts.", f"{prefix}block_sparse_moe.experts."):
            if self.ckpt.has(p + "gate_up_proj"):
                fused_gu, fused_d = p + "gate_up_proj", p + "down_proj"
                break
        if fused_gu is None:
            raise KeyError(f"no weights for expert {e} under {prefix} (tried {names[0]} and fused gate_up_proj)")
        gu = self.W(fused_gu, (self.E, 2 * inter, self.H))[e]
        d = self.W(fused_d, (self.E, self.H, inter))[e]
        return gu[:inter], gu[inter:], d

    def _gate_weight(self, prefix, style):
        if style == "mixtral":
            for n in (f"{prefix}block_sparse_moe.gate.weight", f"{prefix}mlp.gate.weight"):
                if self.ckpt.has(n):
                    return self.W(n, (self.E, self.H))
            raise KeyError(f"{prefix}block_sparse_moe.gate.weight")
        return self.W(f"{prefix}mlp.gate.weight", (self.E, self.H))

    def _routed_experts(self, x, idx, w, prefix, inter, style):
        out = np.zeros_like(x)
        for e in np.unique(idx):
            rows, slots = np.nonzero(idx == e)
            g, u, d = self._expert_weights(prefix, int(e), inter, style)
            xe = x[rows]
            ye = linear(self.act(linear(xe, g)) * linear(xe, u), d)
            np.add.at(out, rows, ye * w[rows, slots][:, None])
        return out

    # --- attention -----------------------------------------------------------------------
    def _attn_standard(self, x, i, positions):
        f, p = self.family, f"model.layers.{i}.self_attn."
        hd, nh, nkv, H = self.head_dim, self.nh, self.nkv, self.H
        if f == QWEN2:
            qb = kb = vb = self.qkv_bias
            ob = False
        elif f in (QWEN3, OLMOE, GPTOSS):
            qb = kb = vb = ob = self.attn_bias
        else:
            qb = kb = vb = ob = False
        q = linear(x, self.W(p + "q_proj.weight", (nh * hd, H)), self._bias(p + "q_proj.bias", qb, nh * hd))
        k = linear(x, self.W(p + "k_proj.weight", (nkv * hd, H)), self._bias(p + "k_proj.bias", kb, nkv * hd))
        v = linear(x, self.W(p + "v_proj.weight", (nkv * hd, H)), self._bias(p + "v_proj.bias", vb, nkv * hd))
        T = x.shape[0]
        if f == OLMOE:
            q = rms_norm(q, self.W(p + "q_norm.weight", (nh * hd,)), self.eps)
            k = rms_norm(k, self.W(p + "k_norm.weight", (nkv * hd,)), self.eps)
            if self.clip_qkv is not None:
                cq = float(self.clip_qkv)
                q, k, v = np.clip(q, -cq, cq), np.clip(k, -cq, cq), np.clip(v, -cq, cq)
        q = q.reshape(T, nh, hd)
        k = k.reshape(T, nkv, hd)
        v = v.reshape(T, nkv, hd)
        if f == QWEN3:
            q = rms_norm(q, self.W(p + "q_norm.weight", (hd,)), self.eps)
            k = rms_norm(k, self.W(p + "k_norm.weight", (hd,)), self.eps)
        inv, af = self.rope.inv_freq(self.rope_dim, int(positions[-1]) + 1)
        ang = rope_angles(inv, positions)
        q = apply_rope_half(q, ang, af)
        k = apply_rope_half(k, ang, af)
        sinks = self.W(p + "sinks", (nh,)) if f == GPTOSS else None
        o = attention_core(q, k, v, hd ** -0.5, self.window[i], sinks).reshape(T, nh * hd)
        return linear(o, self.W(p + "o_proj.weight", (H, nh * hd)), self._bias(p + "o_proj.bias", ob, H))

    def _attn_mla(self, x, i, positions):
        p = f"model.layers.{i}.self_attn."
        H, nh, T = self.H, self.nh, x.shape[0]
        qk, nope, rope, vd, r = self.qk_head, self.qk_nope, self.qk_rope, self.v_head, self.kv_lora_rank
        if self.q_lora_rank is None:
            q = linear(x, self.W(p + "q_proj.weight", (nh * qk, H)))
        else:
            ql = int(self.q_lora_rank)
            qa = linear(x, self.W(p + "q_a_proj.weight", (ql, H)), self._bias(p + "q_a_proj.bias", self.attn_bias, ql))
            qa = rms_norm(qa, self.W(p + "q_a_layernorm.weight", (ql,)), 1e-6)
            q = linear(qa, self.W(p + "q_b_proj.weight", (nh * qk, ql)))
        q = q.reshape(T, nh, qk)
        q_nope, q_rope = q[..., :nope], q[..., nope:]
        ckv = linear(x, self.W(p + "kv_a_proj_with_mqa.weight", (r + rope, H)),
                     self._bias(p + "kv_a_proj_with_mqa.bias", self.attn_bias, r + rope))
        c, k_rope = ckv[:, :r], ckv[:, r:]
        c = rms_norm(c, self.W(p + "kv_a_layernorm.weight", (r,)), 1e-6)
        kv = linear(c, self.W(p + "kv_b_proj.weight", (nh * (nope + vd), r))).reshape(T, nh, nope + vd)
        k_nope, v = kv[..., :nope], kv[..., nope:]
        inv, af = self.rope.inv_freq(rope, int(positions[-1]) + 1)
        ang = rope_angles(inv, positions)
        rot = apply_rope_interleaved if self.rope_interleave else apply_rope_half
        q_rope = rot(q_rope, ang, af)
        k_rope = rot(k_rope.reshape(T, 1, rope), ang, af)
        qf = np.concatenate([q_nope, q_rope], axis=-1)
        kf = np.concatenate([k_nope, np.broadcast_to(k_rope, (T, nh, rope))], axis=-1)
        o = attention_core(qf, kf, v, self.softmax_scale).reshape(T, nh * vd)
        return linear(o, self.W(p + "o_proj.weight", (H, nh * vd)), self._bias(p + "o_proj.bias", self.attn_bias, H))

    # --- feed-forward blocks ---------------------------------------------------------------
    def _ffn(self, x, i, state):
        """Returns (y, gate_record or None). `state` carries MoE++'s gate residual."""
        f, pre = self.family, f"model.layers.{i}."
        moe = i in self.moe_layers
        if f == GLM4_MOE:
            return glm_ffn(self, x, i)
        if f == MIXTRAL:
            logits = linear(x, self._gate_weight(pre, "mixtral"))
            idx, w = route_softmax_topk(logits, self.k, True)
            return self._routed_experts(x, idx, w, pre, self.I, "mixtral"), (idx, w)
        if f in (QWEN2, QWEN3):
            if not moe:
                return self._swiglu_mlp(x, pre + "mlp.", int(self.cfg["intermediate_size"])), None
            mi = int(self.cfg["moe_intermediate_size"])
            logits = linear(x, self._gate_weight(pre, "std"))
            idx, w = route_softmax_topk(logits, self.k, self.norm_topk)
            y = self._routed_experts(x, idx, w, pre, mi, "std")
            if f == QWEN2:
                si = int(self.cfg["shared_expert_intermediate_size"])
                shared = self._swiglu_mlp(x, pre + "mlp.shared_expert.", si)
                gate = sigmoid(linear(x, self.W(pre + "mlp.shared_expert_gate.weight", (1, self.H))))
                y = y + gate * shared
            return y, (idx, w)
        if f == OLMOE:
            logits = linear(x, self._gate_weight(pre, "std"))
            idx, w = route_softmax_topk(logits, self.k, self.norm_topk)
            return self._routed_experts(x, idx, w, pre, self.I, "std"), (idx, w)
        if f in (DSV2, DSV3):
            if not moe:
                return self._swiglu_mlp(x, pre + "mlp.", int(self.cfg["intermediate_size"])), None
            mi = int(self.cfg["moe_intermediate_size"])
            logits = linear(x, self._gate_weight(pre, "std"))
            if f == DSV2:
                idx, w = route_deepseek_v2(logits, int(self.k), self.topk_method, self.n_group, self.topk_group,
                                           self.norm_topk, self.routed_scale)
            else:
                bias = self.W(pre + "mlp.gate.e_score_correction_bias", (self.E,))
                idx, w = route_deepseek_v3(logits, bias, int(self.k), int(self.n_group), int(self.topk_group),
                                           self.norm_topk, self.routed_scale)
            y = self._routed_experts(x, idx, w, pre, mi, "std")
            if self.n_shared:
                y = y + self._swiglu_mlp(x, pre + "mlp.shared_experts.", mi * int(self.n_shared))
            return y, (idx, w)
        if f == GPTOSS:
            return self._gptoss_block(x, pre + "mlp.")
        if f == MOEPP:
            if not moe:
                # The remote code would crash here (MLP.forward takes no gate_residual); we pass the
                # gate residual through unchanged.
                return self._swiglu_mlp(x, pre + "mlp.", self.I), None
            return self._moepp_block(x, pre + "mlp.moe.", state)
        raise AssertionError(f)

    def _gptoss_experts(self, p):
        """(gate_up [E, H, 2I], gate_up bias [E, 2I], down [E, I, H], down bias [E, H]) in transformers' layout
        (x @ W), from float tensors or, when the checkpoint ships them so, MXFP4 blocks and scales."""
        E, H, I = self.E, self.H, self.I
        if self.ckpt.has(p + "gate_up_proj_blocks"):
            gu = mxfp4_dequantize(self.ckpt, p + "gate_up_proj", (E, 2 * I, H)).transpose(0, 2, 1)
            d = mxfp4_dequantize(self.ckpt, p + "down_proj", (E, H, I)).transpose(0, 2, 1)
        else:
            gu = self.W(p + "gate_up_proj", (E, H, 2 * I))
            d = self.W(p + "down_proj", (E, I, H))
        return gu, self.W(p + "gate_up_proj_bias", (E, 2 * I)), d, self.W(p + "down_proj_bias", (E, H))

    def _gptoss_block(self, x, p):
        """HF GptOssMLP: router logits with bias, top-k on the logits, softmax over the k; experts with the clamped
        SwiGLU on interleaved gate (even) / up (odd) columns, (up + 1) * glu, down with bias."""
        logits = linear(x, self.W(p + "router.weight", (self.E, self.H)), self.W(p + "router.bias", (self.E,)))
        idx = topk_desc(logits, self.k)
        w = softmax(np.take_along_axis(logits, idx, axis=-1), axis=-1)
        gu_w, gu_b, d_w, d_b = self._gptoss_experts(p + "experts.")
        out = np.zeros_like(x)
        lim, alpha = self.swiglu_limit, 1.702
        for e in np.unique(idx):
            rows, slots = np.nonzero(idx == e)
            gu = x[rows] @ gu_w[e] + gu_b[e]
            gate = np.minimum(gu[:, 0::2], lim)
            up = np.clip(gu[:, 1::2], -lim, lim)
            glu = gate * sigmoid(gate * alpha)
            ye = ((up + 1) * glu) @ d_w[e] + d_b[e]
            np.add.at(out, rows, ye * w[rows, slots][:, None])
        return out, (idx, w)

    def _moepp_block(self, x, p, state):
        E, H, I = self.E, self.H, self.I
        if self.two_layer_gate:
            h = np.tanh(linear(x, self.W(p + "gate.wg.0.weight", (8 * E, H))))
            logits = linear(h, self.W(p + "gate.wg.2.weight", (E, 8 * E)))
        else:
            logits = linear(x, self.W(p + "gate.wg.weight", (E, H)))
        prev = state.get("moepp_gate_residual")
        if prev is not None:
            logits = logits + linear(prev, self.W(p + "gate.gate_map.weight", (E, E)))
        state["moepp_gate_residual"] = logits
        idx, g = route_moepp(logits, self.mixtral_gating, self.logits_norm, self.norm_std)
        xin = x if (self.mixtral_gating or self.no_mul_topk) else x * MOEPP_TOP_K
        return moepp_experts(xin, idx, g, lambda n, s: self.W(p + "experts.experts." + n, s), E, H, I, self.act), (idx, g)

    # --- model ---------------------------------------------------------------------------
    def forward(self, ids):
        """Full causal forward over `ids` -> (logits [T,V], [(layer, idx[T,k], w[T,k]), ...])."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 1 or len(ids) == 0:
            raise ValueError("need a non-empty 1-D list of token ids")
        if ids.min() < 0 or ids.max() >= self.V:
            raise ValueError(f"token id out of range [0, {self.V})")
        emb = self.W("model.embed_tokens.weight", (self.V, self.H))
        h = emb[ids]
        positions = np.arange(len(ids))
        gates = []
        state = {}
        for i in range(self.L):
            pre = f"model.layers.{i}."
            xn = rms_norm(h, self.W(pre + "input_layernorm.weight", (self.H,)), self.eps)
            if self.family in (DSV2, DSV3):
                a = self._attn_mla(xn, i, positions)
            elif self.family == GLM4_MOE:
                a = glm_attention(self, xn, i, positions)
            else:
                a = self._attn_standard(xn, i, positions)
            h = h + a
            xn = rms_norm(h, self.W(pre + "post_attention_layernorm.weight", (self.H,)), self.eps)
            y, rec = self._ffn(xn, i, state)
            if rec is not None:
                gates.append((i, rec[0], rec[1]))
            h = h + y
        h = rms_norm(h, self.W("model.norm.weight", (self.H,)), self.eps)
        if self.tie:
            head = emb
        else:
            if not self.ckpt.has_weight("lm_head.weight"):
                raise KeyError("lm_head.weight missing and tie_word_embeddings is false")
            head = self.W("lm_head.weight", (self.V, self.H))
        logits = h @ head.T
        if not self._checked_coverage:
            self._checked_coverage = True
            self._check_coverage()
        return logits, gates

    def unused_tensors(self):
        out = []
        for n in self.ckpt.names():
            if n in self.ckpt.used:
                continue
            if n.endswith("rotary_emb.inv_freq"):
                continue
            if self.tie and n == "lm_head.weight":
                continue
            if n.startswith("model.layers."):
                try:
                    li = int(n.split(".")[2])
                except ValueError:
                    li = -1
                if li >= self.L:  # DeepSeek-V3 MTP layers (num_nextn_predict_layers) and beyond
                    continue
            out.append(n)
        return sorted(out)

    def _touch_all_experts(self):
        """Load (and shape-check) every routed expert, also those no token was routed to."""
        f = self.family
        for i in sorted(self.moe_layers):
            pre = f"model.layers.{i}."
            if f == MOEPP:
                self.W(pre + "mlp.moe.gate.gate_map.weight", (self.E, self.E))  # unused by the first MoE layer
                p = pre + "mlp.moe.experts.experts."
                n_ffn = self.E - 2 - MOEPP_N_CONSTANT
                for e in range(n_ffn):
                    self.W(p + f"{e}.up_proj.weight", (2 * self.I, self.H))
                    self.W(p + f"{e}.down_proj.weight", (self.H, self.I))
                for e in range(n_ffn, n_ffn + MOEPP_N_CONSTANT):
                    self.W(p + f"{e}.wg.weight", (2, self.H))
                    self.W(p + f"{e}.constant", (self.H,))
                continue
            if f == GPTOSS:
                self._gptoss_experts(pre + "mlp.experts.")
                continue
            style = "mixtral" if f == MIXTRAL else "std"
            inter = self.I if f in (MIXTRAL, OLMOE) else int(self.cfg["moe_intermediate_size"])
            for e in range(int(self.E)):
                self._expert_weights(pre, e, inter, style)

    def _check_coverage(self):
        self._touch_all_experts()
        unused = self.unused_tensors()
        if not unused:
            return
        msg = f"{len(unused)} checkpoint tensors were not used: {unused[:10]}{' ...' if len(unused) > 10 else ''}"
        if self.strict:
            raise ValueError(msg)
        print("moe_reference: warning: " + msg, file=sys.stderr)

    def eos_ids(self):
        gen_path = os.path.join(self.model_dir, "generation_config.json")
        eos = None
        if os.path.exists(gen_path):
            with open(gen_path) as f:
                eos = json.load(f).get("eos_token_id")
        if eos is None:
            eos = self.cfg.get("eos_token_id")
        if eos is None:
            return set()
        if isinstance(eos, int):
            return {eos}
        return {int(e) for e in eos}

    def generate(self, prompt_ids, max_new_tokens, ignore_eos=False):
        """Greedy decoding without KV cache. Returns (generated ids, last prompt logits, gates)."""
        prompt_ids = [int(t) for t in prompt_ids]
        logits, gates = self.forward(prompt_ids)
        last_prompt_logits = logits[-1].copy()
        eos = set() if ignore_eos else self.eos_ids()
        seq = list(prompt_ids)
        generated = []
        step_logits = last_prompt_logits
        for step in range(max_new_tokens):
            if step > 0:
                step_logits = self.forward(seq)[0][-1]
            tok = int(np.argmax(step_logits))  # first index of the maximum on ties
            generated.append(tok)
            seq.append(tok)
            if tok in eos:
                break
        return generated, last_prompt_logits, gates


def moepp_experts(xin, idx, gates, get, E, H, I, act=silu):
    """MoE++ expert combine. xin is the (already x2-scaled if applicable) expert input.
    get(name_suffix, shape) -> weight. Experts: 0..E-5 FFN, E-4/E-3 constant, E-2 copy, E-1 zero."""
    out = np.zeros_like(xin)
    n_ffn = E - 2 - MOEPP_N_CONSTANT
    for e in np.unique(idx):
        e = int(e)
        rows, slots = np.nonzero(idx == e)
        xe = xin[rows]
        if e < n_ffn:
            up = linear(xe, get(f"{e}.up_proj.weight", (2 * I, H)))
            ye = linear(act(up[:, :I]) * up[:, I:], get(f"{e}.down_proj.weight", (H, I)))
        elif e < n_ffn + MOEPP_N_CONSTANT:
            a = softmax(linear(xe, get(f"{e}.wg.weight", (2, H))), axis=-1)
            ye = a[:, :1] * xe + a[:, 1:2] * get(f"{e}.constant", (H,))[None, :]
        elif e == E - 2:
            ye = xe
        else:
            ye = np.zeros_like(xe)
        np.add.at(out, rows, ye * gates[rows, slots][:, None])
    return out


# ----------------------------------------------------------------------------------------
# GLM-4.5 (Glm4MoeForCausalLM, model_type "glm4_moe"), from transformers' glm4_moe modeling and
# configuration code: grouped-query attention with its own head_dim, q/k/v biases (no o bias) when
# attention_bias, per-head q/k RMSNorm before RoPE when use_qk_norm, RoPE on the first
# int(head_dim * partial_rotary_factor) elements of each head only (half-split pairs within them,
# frequencies over that width); dense first_k_dense_replace layers; noaux_tc routing as DeepSeek-V3
# (sigmoid, e_score_correction_bias for selection only, groups by top-2 sum) plus one shared MLP of
# width moe_intermediate_size * n_shared_experts, added unweighted. MTP layers (index >= L) unused.
# ----------------------------------------------------------------------------------------

def glm_partial_rotary_factor(cfg):
    """transformers v5 keeps it in rope_parameters; older configs at the top level; default 0.5."""
    rp = cfg.get("rope_parameters")
    if isinstance(rp, dict) and rp.get("partial_rotary_factor") is not None:
        return float(rp["partial_rotary_factor"])
    if cfg.get("partial_rotary_factor") is not None:
        return float(cfg["partial_rotary_factor"])
    return 0.5


def glm_configure(m):
    """Sets every attribute the shared forward, expert and coverage code reads, for GLM-4.5."""
    c = m.cfg
    m.eps = float(c.get("rms_norm_eps", 1e-5))
    m.tie = bool(c.get("tie_word_embeddings", False))
    m.rope = resolve_rope(c, 1e4)
    m.head_dim = int(c.get("head_dim") or m.H // m.nh)
    factor = glm_partial_rotary_factor(c)
    if not 0 < factor <= 1:
        raise ValueError(f"partial_rotary_factor {factor} is not within (0, 1]")
    m.rope_dim = int(m.head_dim * factor)
    if m.rope_dim < 2 or m.rope_dim % 2:
        raise ValueError(f"rotary dim {m.rope_dim} (head_dim {m.head_dim} x {factor}) must be even and >= 2")
    m.attn_bias = bool(c.get("attention_bias", False))
    m.use_qk_norm = bool(c.get("use_qk_norm", False))
    m.E = int(c.get("n_routed_experts", 128))
    m.k = int(c.get("num_experts_per_tok", 8))
    m.n_shared = int(c.get("n_shared_experts", 1))
    m.n_group = int(c.get("n_group", 1))
    m.topk_group = int(c.get("topk_group", 1))
    m.norm_topk = bool(c.get("norm_topk_prob", True))
    m.routed_scale = float(c.get("routed_scaling_factor", 1.0))
    first_dense = int(c.get("first_k_dense_replace", 1))
    m.moe_layers = set(range(first_dense, m.L))
    m.window = [None] * m.L


def apply_rope_partial_half(x, ang, af, rot):
    """Half-split pairs within the first `rot` elements of each head; the rest passes through."""
    return np.concatenate([apply_rope_half(x[..., :rot], ang, af), x[..., rot:]], axis=-1)


def glm_attention(m, x, i, positions):
    p = f"model.layers.{i}.self_attn."
    hd, nh, nkv, H, T = m.head_dim, m.nh, m.nkv, m.H, x.shape[0]
    q = linear(x, m.W(p + "q_proj.weight", (nh * hd, H)), m._bias(p + "q_proj.bias", m.attn_bias, nh * hd))
    k = linear(x, m.W(p + "k_proj.weight", (nkv * hd, H)), m._bias(p + "k_proj.bias", m.attn_bias, nkv * hd))
    v = linear(x, m.W(p + "v_proj.weight", (nkv * hd, H)), m._bias(p + "v_proj.bias", m.attn_bias, nkv * hd))
    q, k, v = q.reshape(T, nh, hd), k.reshape(T, nkv, hd), v.reshape(T, nkv, hd)
    if m.use_qk_norm:
        q = rms_norm(q, m.W(p + "q_norm.weight", (hd,)), m.eps)
        k = rms_norm(k, m.W(p + "k_norm.weight", (hd,)), m.eps)
    inv, af = m.rope.inv_freq(m.rope_dim, int(positions[-1]) + 1)
    ang = rope_angles(inv, positions)
    q = apply_rope_partial_half(q, ang, af, m.rope_dim)
    k = apply_rope_partial_half(k, ang, af, m.rope_dim)
    o = attention_core(q, k, v, hd ** -0.5).reshape(T, nh * hd)
    return linear(o, m.W(p + "o_proj.weight", (H, nh * hd)))


def glm_ffn(m, x, i):
    pre = f"model.layers.{i}."
    if i not in m.moe_layers:
        return m._swiglu_mlp(x, pre + "mlp.", int(m.cfg["intermediate_size"])), None
    mi = int(m.cfg["moe_intermediate_size"])
    logits = linear(x, m._gate_weight(pre, "std"))
    bias = m.W(pre + "mlp.gate.e_score_correction_bias", (m.E,))
    idx, w = route_deepseek_v3(logits, bias, m.k, m.n_group, m.topk_group, m.norm_topk, m.routed_scale)
    y = m._routed_experts(x, idx, w, pre, mi, "std")
    if m.n_shared:
        y = y + m._swiglu_mlp(x, pre + "mlp.shared_experts.", mi * m.n_shared)
    return y, (idx, w)


# ----------------------------------------------------------------------------------------
# output
# ----------------------------------------------------------------------------------------

def result_json(architecture, prompt_ids, generated, last_prompt_logits, gates):
    return {
        "format": FORMAT,
        "architecture": architecture,
        "prompt_token_ids": [int(t) for t in prompt_ids],
        "generated_token_ids": [int(t) for t in generated],
        "last_prompt_logits": [float(v) for v in last_prompt_logits],
        "gate": [
            {"layer": int(layer),
             "experts": [[int(e) for e in row] for row in idx],
             "weights": [[float(v) for v in row] for row in w]}
            for layer, idx, w in gates
        ],
    }


def parse_ids(s):
    s = s.strip()
    if not s:
        raise argparse.ArgumentTypeError("empty --prompt-ids")
    try:
        return [int(t) for t in s.split(",") if t.strip() != ""]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"bad --prompt-ids {s!r}: {e}")


def run(model_dir, prompt_ids, max_new_tokens, ignore_eos=False, strict=False):
    model = ReferenceModel(model_dir, strict=strict)
    gen, lpl, gates = model.generate(prompt_ids, max_new_tokens, ignore_eos)
    return result_json(model.architecture, prompt_ids, gen, lpl, gates)


def main(argv=None):
    ap = argparse.ArgumentParser(description="numpy float64 reference forward + greedy decoding for MoE checkpoints")
    ap.add_argument("model_dir")
    ap.add_argument("--prompt-ids", required=True, type=parse_ids, help="comma-separated token ids")
    ap.add_argument("--max-new-tokens", required=True, type=int)
    ap.add_argument("--ignore-eos", action="store_true")
    ap.add_argument("--strict", action="store_true", help="fail if some checkpoint tensor is never used")
    ap.add_argument("--output", help="write the JSON here instead of stdout")
    a = ap.parse_args(argv)
    if a.max_new_tokens < 0:
        ap.error("--max-new-tokens must be >= 0")
    res = run(a.model_dir, a.prompt_ids, a.max_new_tokens, a.ignore_eos, a.strict)
    text = json.dumps(res)
    if a.output:
        with open(a.output, "w") as f:
            f.write(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
