#!/usr/bin/env python3
"""The same CLI and JSON as moe_reference.py, computed by Hugging Face transformers' own modeling code.

    python3 hf_reference.py MODEL_DIR --prompt-ids 1,2,3 --max-new-tokens N [--ignore-eos]
                            [--device cuda|cpu] [--attn eager|sdpa] [--no-patch] [--manual-loop]

Needs torch + transformers (written against transformers 5.x, with fallbacks for 4.x) and
safetensors. Cannot run on the CPU-only CI machines; it fails loudly when an assumption breaks.

* The model is loaded with AutoModelForCausalLM.from_pretrained(dir, dtype=float32) so BF16/F16
  weights are widened to float32; TF32 matmuls are disabled; eager attention by default.
* last_prompt_logits: logits of the last prompt position from one forward pass over the prompt.
* gate: captured with forward hooks during that forward pass. Primary path (transformers v5):
  a pre-hook on each MoE block's `experts` module, whose call signature is
  (hidden_states, top_k_index, top_k_weights) -- exactly what HF combines. Older layouts
  (v4: experts is a plain ModuleList) fall back to the gate output (see README).
  Experts are re-ordered per position by descending selection score (DeepSeek-V2/V3 use
  topk(sorted=False), whose order is unspecified): the biased, group-masked score for
  DeepSeek-V3 and GLM-4.5, the routing weight otherwise.
* generated_token_ids: model.generate with a fresh GenerationConfig (greedy, no processors; the
  checkpoint's generation_config.json is used only for eos_token_id), verified step by step
  against the argmax of the returned raw logits. --manual-loop uses a hand-written cached loop.
* MoE++ (MoeForCausalLM, model_type "MoE++") is remote code, not part of transformers: the
  script prints a JSON object with a "skipped" field and exits with status 3.
* DeepSeek-V2/V3: if the loaded attention's softmax scale differs from
  (qk_nope+qk_rope)^-0.5 * mscale^2 (mscale = yarn_get_mscale(factor, mscale_all_dim), what the
  original DeepSeek code and moe_reference.py use; older transformers builds leave it out for V2),
  it is patched to that value and a note goes to stderr. --no-patch keeps HF's value.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys

FORMAT = "moe-serve.generation.v2"
SUPPORTED = ["MixtralForCausalLM", "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM", "OlmoeForCausalLM",
             "DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM", "Glm4MoeForCausalLM"]
MOEPP_NAMES = {"MoeForCausalLM", "MoEPlusPlusForCausalLM"}


class HFCheckError(RuntimeError):
    pass


def die(msg):
    raise HFCheckError(msg)


def note(msg):
    print(f"hf_reference: note: {msg}", file=sys.stderr)


def parse_ids(s):
    try:
        ids = [int(t) for t in s.split(",") if t.strip() != ""]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"bad --prompt-ids {s!r}: {e}")
    if not ids:
        raise argparse.ArgumentTypeError("empty --prompt-ids")
    return ids


# ----------------------------------------------------------------------------------------
# config-derived expectations (mirror of moe_reference.py, kept independent of it)
# ----------------------------------------------------------------------------------------

def rope_params(cfg):
    rs, rp = cfg.get("rope_scaling"), cfg.get("rope_parameters")
    p = dict(rs or rp or {})
    p["rope_type"] = p.get("rope_type") or p.get("type") or "default"
    return p


def yarn_get_mscale(scale, mscale=1.0):
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def expected_deepseek_scale(cfg):
    qk = int(cfg.get("qk_nope_head_dim", 128)) + int(cfg.get("qk_rope_head_dim", 64))
    s = qk ** -0.5
    p = rope_params(cfg)
    if p["rope_type"] != "default" and p.get("mscale_all_dim"):
        m = yarn_get_mscale(float(p["factor"]), float(p["mscale_all_dim"]))
        s *= m * m
    return s


def expected_moe_layers(arch, cfg):
    L = int(cfg["num_hidden_layers"])
    if arch in ("MixtralForCausalLM", "OlmoeForCausalLM"):
        return set(range(L))
    if arch in ("Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM"):
        E = cfg.get("num_experts") or cfg.get("num_local_experts") or 0
        step = cfg.get("decoder_sparse_step", 1) or 1
        mlo = set(cfg.get("mlp_only_layers") or [])
        return {i for i in range(L) if i not in mlo and E > 0 and (i + 1) % step == 0}
    if arch in ("DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM"):
        if cfg.get("n_routed_experts") is None:
            return set()
        fk = int(cfg.get("first_k_dense_replace", 3 if arch == "DeepseekV3ForCausalLM" else 0))
        return {i for i in range(L) if i >= fk}
    if arch == "Glm4MoeForCausalLM":
        return {i for i in range(L) if i >= int(cfg.get("first_k_dense_replace", 1))}
    die(f"no MoE-layer rule for {arch}")


def num_experts(arch, cfg):
    if arch.startswith("Deepseek") or arch == "Glm4MoeForCausalLM":
        return int(cfg["n_routed_experts"])
    if arch == "MixtralForCausalLM":
        return int(cfg.get("num_local_experts") or cfg.get("num_experts"))
    return int(cfg.get("num_experts") or cfg.get("num_local_experts"))


# ----------------------------------------------------------------------------------------
# main work
# ----------------------------------------------------------------------------------------

def load_model(model_dir, arch, cfg, device, attn):
    import torch
    from transformers import AutoModelForCausalLM

    kwargs = dict(attn_implementation=attn, output_loading_info=True)
    try:
        model, info = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, **kwargs)
    except TypeError:  # transformers 4.x spells it torch_dtype
        model, info = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32, **kwargs)
    if type(model).__name__ != arch:
        die(f"transformers built {type(model).__name__}, config says {arch}")
    L = int(cfg["num_hidden_layers"])
    tied = bool(cfg.get("tie_word_embeddings", False))

    def is_mtp(k):
        m = re.search(r"layers\.(\d+)\.", k)
        return m is not None and int(m.group(1)) >= L and arch in ("DeepseekV3ForCausalLM", "Glm4MoeForCausalLM")

    def field(name):
        v = info.get(name) if isinstance(info, dict) else getattr(info, name, None)
        return list(v or [])

    if not isinstance(info, dict) and not hasattr(info, "missing_keys"):
        die(f"unexpected loading-info object {type(info)}")
    missing = [k for k in field("missing_keys") if not str(k).endswith("inv_freq")
               and not (tied and str(k).endswith("lm_head.weight"))]
    unexpected = [k for k in field("unexpected_keys") if not is_mtp(str(k))]
    mismatched = field("mismatched_keys")
    errors = field("error_msgs")
    if missing or unexpected or mismatched or errors:
        die(f"checkpoint did not load cleanly: missing={missing[:8]} unexpected={unexpected[:8]} "
            f"mismatched={mismatched[:8]} errors={errors[:3]}")
    for n, p in model.named_parameters():
        if p.dtype != torch.float32:
            die(f"parameter {n} is {p.dtype}, expected float32")
    spot_check_weights(model, model_dir, cfg)
    model.to(device)
    model.eval()
    return model


def spot_check_weights(model, model_dir, cfg):
    """Compare a few parameters with the checkpoint file (catches silently random-initialised weights)."""
    import torch
    try:
        from safetensors import safe_open
    except ImportError:
        note("safetensors not importable: weight spot check skipped")
        return
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
    else:
        with safe_open(os.path.join(model_dir, "model.safetensors"), "pt") as f:
            wm = {k: "model.safetensors" for k in f.keys()}
    params = dict(model.named_parameters())
    params.update(dict(model.named_buffers()))
    candidates = ["model.embed_tokens.weight", "model.norm.weight", "model.layers.0.input_layernorm.weight"]
    for i in range(int(cfg["num_hidden_layers"])):
        for n in (f"model.layers.{i}.mlp.gate.weight", f"model.layers.{i}.block_sparse_moe.gate.weight",
                  f"model.layers.{i}.mlp.gate.e_score_correction_bias"):
            if n in wm:
                candidates.append(n)
    checked = 0
    for n in candidates:
        if n not in wm:
            continue
        pn = n
        if pn not in params and "block_sparse_moe" in pn:
            pn = pn.replace("block_sparse_moe", "mlp")
        if pn not in params:
            note(f"spot check: no model parameter named {pn}")
            continue
        with safe_open(os.path.join(model_dir, wm[n]), "pt") as f:
            ref = f.get_tensor(n).to(torch.float32)
        got = params[pn].detach().to("cpu", torch.float32)
        if tuple(ref.shape) != tuple(got.shape) or not torch.equal(ref, got):
            die(f"parameter {pn} does not equal checkpoint tensor {n}")
        checked += 1
    if checked < 3:
        die(f"weight spot check matched only {checked} tensors")


def find_moe_blocks(model):
    layers = model.model.layers
    blocks = {}
    for i, layer in enumerate(layers):
        mlp = getattr(layer, "mlp", None)
        if mlp is None:
            mlp = getattr(layer, "block_sparse_moe", None)
        if mlp is not None and hasattr(mlp, "experts") and hasattr(mlp, "gate"):
            blocks[i] = mlp
    return blocks


class Capture:
    def __init__(self):
        self.active = False
        self.rec = {}


def install_hooks(blocks, cap):
    import torch.nn as nn
    handles = []
    for layer, block in blocks.items():
        experts = block.experts
        has_forward = type(experts).forward is not nn.Module.forward

        def experts_pre(module, args, kwargs, layer=layer):
            if not cap.active:
                return
            names = ("hidden_states", "top_k_index", "top_k_weights")
            vals = list(args) + [kwargs.get(n) for n in names[len(args):]]
            if len(vals) < 3 or vals[1] is None or vals[2] is None:
                die(f"layer {layer}: experts called with an unexpected signature "
                    f"(args={len(args)}, kwargs={sorted(kwargs)})")
            cap.rec.setdefault(layer, {})["experts_in"] = (vals[1].detach().cpu(), vals[2].detach().float().cpu())

        def gate_pre(module, args, kwargs, layer=layer):
            if cap.active:
                x = args[0] if args else kwargs.get("hidden_states")
                cap.rec.setdefault(layer, {})["gate_in"] = x.detach()

        def gate_post(module, args, kwargs, output, layer=layer):
            if cap.active:
                cap.rec.setdefault(layer, {})["gate_out"] = output

        if has_forward:
            handles.append(experts.register_forward_pre_hook(experts_pre, with_kwargs=True))
        handles.append(block.gate.register_forward_pre_hook(gate_pre, with_kwargs=True))
        handles.append(block.gate.register_forward_hook(gate_post, with_kwargs=True))
    return handles


def _routing_from_gate_fallback(arch, cfg, rec, layer):
    """transformers-4.x layouts: derive (idx, weights) from what the gate returned."""
    import torch
    out = rec.get("gate_out")
    if isinstance(out, (tuple, list)):
        ints = [t for t in out if torch.is_tensor(t) and not t.is_floating_point()]
        floats = [t for t in out if torch.is_tensor(t) and t.is_floating_point()]
        for it in ints:
            for ft in floats:
                if ft.shape == it.shape:
                    note(f"layer {layer}: gate output taken from the gate's (indices, weights) output")
                    return it.detach().cpu(), ft.detach().float().cpu()
        die(f"layer {layer}: cannot interpret gate output tuple of {[getattr(t, 'shape', t) for t in out]}")
    if not torch.is_tensor(out):
        die(f"layer {layer}: gate returned {type(out)}")
    logits = out.detach().float().cpu()
    k = int(cfg["num_experts_per_tok"])
    note(f"layer {layer}: gate recomputed from gate logits (transformers-4.x layout)")
    if arch == "MixtralForCausalLM":
        p = torch.softmax(logits, dim=-1)
        w, idx = torch.topk(p, k, dim=-1)
        return idx, w / w.sum(-1, keepdim=True)
    if arch in ("Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM", "OlmoeForCausalLM"):
        p = torch.softmax(logits, dim=-1)
        w, idx = torch.topk(p, k, dim=-1)
        if cfg.get("norm_topk_prob", False):
            w = w / w.sum(-1, keepdim=True)
        return idx, w
    die(f"layer {layer}: no gate-logits fallback for {arch}")


def collect_gates(arch, cfg, blocks, cap, T):
    import torch
    E = num_experts(arch, cfg)
    k = int(cfg["num_experts_per_tok"])
    out = []
    for layer in sorted(blocks):
        rec = cap.rec.get(layer)
        if rec is None:
            die(f"layer {layer}: no gate capture (MoE block not called?)")
        if "experts_in" in rec:
            idx, w = rec["experts_in"]
            idx = idx.reshape(-1, idx.shape[-1]).long()
            w = w.reshape(-1, w.shape[-1])
            if w.shape[-1] == E and idx.shape[-1] != E:  # dense [T, E] routing weights
                w = torch.gather(w, 1, idx)
        else:
            idx, w = _routing_from_gate_fallback(arch, cfg, rec, layer)
            idx = idx.reshape(-1, idx.shape[-1]).long()
            w = w.reshape(-1, w.shape[-1])
        if tuple(idx.shape) != (T, k) or tuple(w.shape) != (T, k):
            die(f"layer {layer}: gate shapes idx {tuple(idx.shape)} w {tuple(w.shape)}, expected ({T}, {k})")
        if idx.min() < 0 or idx.max() >= E:
            die(f"layer {layer}: expert index out of range")
        # canonical order: descending selection score, ties keep HF's order
        if arch in ("DeepseekV3ForCausalLM", "Glm4MoeForCausalLM"):
            block = blocks[layer]
            x = rec.get("gate_in")
            if x is None:
                die(f"layer {layer}: gate input not captured")
            logits = torch.nn.functional.linear(x.reshape(-1, x.shape[-1]).float(), block.gate.weight.float()).cpu()
            bias = block.gate.e_score_correction_bias.detach().float().cpu()
            sc = torch.sigmoid(logits) + bias
            glm = arch == "Glm4MoeForCausalLM"  # GLM's class defaults are 1 group, 1 kept
            ng, tg = int(cfg.get("n_group", 1 if glm else 8)), int(cfg.get("topk_group", 1 if glm else 4))
            gs = sc.view(T, ng, E // ng).topk(2, dim=-1)[0].sum(-1)
            keep = torch.zeros_like(gs).scatter_(1, torch.topk(gs, tg, dim=-1)[1], 1.0)
            masked = sc.masked_fill(~keep.repeat_interleave(E // ng, dim=1).bool(), 0.0)
            key = torch.gather(masked, 1, idx)
        else:
            key = w
        rows_idx, rows_w = [], []
        for t in range(T):
            order = sorted(range(k), key=lambda j: -float(key[t, j]))  # stable
            rows_idx.append([int(idx[t, j]) for j in order])
            rows_w.append([float(w[t, j]) for j in order])
        out.append({"layer": int(layer), "experts": rows_idx, "weights": rows_w})
    return out


def patch_deepseek_scaling(model, arch, cfg, enabled):
    if not arch.startswith("Deepseek"):
        return
    want = expected_deepseek_scale(cfg)
    changed = 0
    for layer in model.model.layers:
        attn = layer.self_attn
        have = getattr(attn, "scaling", None)
        if have is None:
            have = getattr(attn, "softmax_scale", None)
            attr = "softmax_scale"
        else:
            attr = "scaling"
        if have is None:
            die("DeepSeek attention has neither .scaling nor .softmax_scale")
        if abs(have - want) > 1e-9 * want:
            if enabled:
                setattr(attn, attr, want)
                changed += 1
            else:
                note(f"attention softmax scale {have!r} differs from original-DeepSeek {want!r} (not patched)")
                return
    if changed:
        note(f"patched the softmax scale of {changed} attention layers to {want!r} "
             f"(qk_head^-0.5 * mscale^2, original DeepSeek semantics; this transformers build omits mscale^2)")


def eos_ids(model_dir, cfg):
    eos = None
    p = os.path.join(model_dir, "generation_config.json")
    if os.path.exists(p):
        with open(p) as f:
            eos = json.load(f).get("eos_token_id")
    if eos is None:
        eos = cfg.get("eos_token_id")
    if eos is None:
        return []
    return [int(eos)] if isinstance(eos, int) else [int(e) for e in eos]


def greedy_generate(model, ids, n_new, eos, manual):
    import torch
    P = ids.shape[1]
    if n_new == 0:
        return []
    if manual:
        from transformers import DynamicCache
        try:
            cache = DynamicCache(config=model.config)
        except TypeError:
            cache = DynamicCache()
        out = model(input_ids=ids, past_key_values=cache, use_cache=True)
        gen = []
        for step in range(n_new):
            tok = int(torch.argmax(out.logits[0, -1]))
            gen.append(tok)
            if tok in eos:
                break
            if step + 1 < n_new:
                nxt = torch.tensor([[tok]], device=ids.device)
                out = model(input_ids=nxt, past_key_values=out.past_key_values, use_cache=True)
        return gen
    from transformers import GenerationConfig
    pad = eos[0] if eos else 0
    gc = GenerationConfig(do_sample=False, num_beams=1, max_new_tokens=n_new, min_new_tokens=0,
                          eos_token_id=(eos if eos else None), pad_token_id=pad)
    model.generation_config = gc  # no merging with the checkpoint's sampling defaults
    res = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=gc,
                         output_logits=True, return_dict_in_generate=True, use_cache=True)
    seq = res.sequences[0].tolist()
    if seq[:P] != ids[0].tolist():
        die("generate() changed the prompt")
    gen = seq[P:]
    logits = res.logits
    if len(logits) != len(gen):
        die(f"generate() returned {len(logits)} logits for {len(gen)} tokens")
    for t, (tok, lg) in enumerate(zip(gen, logits)):
        am = int(torch.argmax(lg[0]))
        if am != tok:
            die(f"generate() step {t} produced {tok} but argmax of its raw logits is {am}: a logits processor "
                f"is active; rerun with --manual-loop")
    # stop rule check (ours: stop right after the first eos, which is included)
    for t, tok in enumerate(gen):
        if tok in eos and t != len(gen) - 1:
            die(f"generation continued after eos {tok} at step {t}")
    if len(gen) < n_new and (not gen or gen[-1] not in eos):
        die(f"generation stopped after {len(gen)} < {n_new} tokens without eos")
    return gen


def run(model_dir, prompt_ids, n_new, ignore_eos=False, device=None, attn="eager", patch=True, manual=False):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    arch = (cfg.get("architectures") or [None])[0]
    if cfg.get("model_type") == "MoE++" or arch in MOEPP_NAMES:
        return {"format": FORMAT, "architecture": arch, "prompt_token_ids": list(prompt_ids),
                "skipped": "MoE++ (MoeForCausalLM, model_type 'MoE++') is remote code "
                           "(SkyworkAI/MoE-plus-plus), not part of transformers: not checked"}, 3
    if arch not in SUPPORTED:
        die(f"unsupported architecture {arch!r}")
    import torch
    import transformers

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    note(f"transformers {transformers.__version__}, torch {torch.__version__}, device {device}, attn {attn}")

    if arch == "DeepseekV2ForCausalLM" and cfg.get("norm_topk_prob") and int(cfg.get("num_experts_per_tok") or 1) > 1:
        note("DeepSeek-V2 with norm_topk_prob=true: HF ignores it (always x routed_scaling_factor), "
             "moe_reference.py follows the original gate (renormalise, no scaling): routing weights will differ")
    if arch == "Qwen2MoeForCausalLM" and cfg.get("use_sliding_window") and cfg.get("layer_types") is None:
        note("Qwen2-MoE sliding window without explicit layer_types: the per-layer rule differs between "
             "transformers versions")
    rp = rope_params(cfg)
    if rp["rope_type"] == "dynamic" and len(prompt_ids) + n_new > int(cfg["max_position_embeddings"]):
        note("dynamic RoPE past max_position_embeddings: HF's cached keys keep older frequencies, so tokens "
             "after the first generated one may legitimately differ from a no-cache reference")

    model = load_model(model_dir, arch, cfg, device, attn)
    patch_deepseek_scaling(model, arch, cfg, patch)
    blocks = find_moe_blocks(model)
    want_layers = expected_moe_layers(arch, cfg)
    if set(blocks) != want_layers:
        die(f"MoE layers in the HF model {sorted(blocks)} differ from the config rule {sorted(want_layers)}")
    cap = Capture()
    handles = install_hooks(blocks, cap)
    ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=device)
    with torch.no_grad():
        cap.active = True
        out = model(input_ids=ids, use_cache=False)
        cap.active = False
        last = out.logits[0, -1].detach().to("cpu", torch.float64)
        gates = collect_gates(arch, cfg, blocks, cap, len(prompt_ids))
        for h in handles:
            h.remove()
        eos = [] if ignore_eos else eos_ids(model_dir, cfg)
        gen = greedy_generate(model, ids, n_new, eos, manual)
    if last.shape[0] != int(cfg["vocab_size"]):
        die(f"logits have {last.shape[0]} entries, vocab_size is {cfg['vocab_size']}")
    if gen and gen[0] != int(torch.argmax(last)):
        note("first generated token differs from argmax of the prompt forward (near-tie between cached and "
             "uncached paths)")
    return {
        "format": FORMAT,
        "architecture": arch,
        "prompt_token_ids": [int(t) for t in prompt_ids],
        "generated_token_ids": [int(t) for t in gen],
        "last_prompt_logits": [float(v) for v in last.tolist()],
        "gate": gates,
    }, 0


def main(argv=None):
    ap = argparse.ArgumentParser(description="HF transformers forward + greedy decoding, moe-serve JSON format")
    ap.add_argument("model_dir")
    ap.add_argument("--prompt-ids", required=True, type=parse_ids)
    ap.add_argument("--max-new-tokens", required=True, type=int)
    ap.add_argument("--ignore-eos", action="store_true")
    ap.add_argument("--device", default=None)
    ap.add_argument("--attn", default="eager", choices=["eager", "sdpa"])
    ap.add_argument("--no-patch", action="store_true", help="keep HF's DeepSeek softmax scale even if it lacks mscale^2")
    ap.add_argument("--manual-loop", action="store_true", help="greedy loop with DynamicCache instead of generate()")
    ap.add_argument("--output")
    a = ap.parse_args(argv)
    try:
        res, rc = run(a.model_dir, a.prompt_ids, a.max_new_tokens, a.ignore_eos, a.device, a.attn,
                      not a.no_patch, a.manual_loop)
    except HFCheckError as e:
        print(f"hf_reference: ERROR: {e}", file=sys.stderr)
        return 1
    text = json.dumps(res)
    if a.output:
        with open(a.output, "w") as f:
            f.write(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
