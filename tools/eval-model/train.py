#!/usr/bin/python3
"""Trains the evaluation model: a small Mixtral-shaped MoE on English text from a Debian package, with a tokenizer
trained by the project's own BPE trainer (moe train-tokenizer), written as a Hugging Face checkpoint directory.

Everything is deterministic: the text split (corpus.py), the tokenizer (the Java trainer breaks ties by text), the
batches and the initial weights (seeded), and torch's CPU kernels at a fixed thread count. Needs Debian's
python3-torch and numpy (run with /usr/bin/python3) and a JDK for bin/moe. See README.md.
"""
import os

# Set before torch loads OpenMP: on a shared machine a spinning thread only takes time from the one doing work.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import math
import re
import struct
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import corpus

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# The model: Mixtral's architecture at a few million parameters.
VOCAB = 2048
HIDDEN = 128
LAYERS = 4
HEADS = 4
KV_HEADS = 2
HEAD_DIM = HIDDEN // HEADS
INTERMEDIATE = 256
EXPERTS = 8
TOP_K = 2
ROPE_THETA = 10000.0
EPS = 1e-5
MAX_POSITIONS = 1024
ROUTER_AUX_LOSS_COEF = 0.02
TOKENIZER_TEXT_BYTES = 512 * 1024

# GPT-2's split, exact for printable ASCII (corpus.clean keeps only that), as the Java tokenizer applies it.
_SPLIT = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")


def byte_alphabet():
    """GPT-2's bytes_to_unicode: printable bytes spell themselves, the rest map to 256 + n."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, n = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    return chars


class Encoder:
    """Byte-level BPE encoding with tokenizer.json's merges, by rank, as the Hugging Face BPE model applies them."""

    def __init__(self, tokenizer_json):
        with open(tokenizer_json, encoding="utf-8") as f:
            model = json.load(f)["model"]
        self.vocab = model["vocab"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.alphabet = byte_alphabet()
        self.cache = {}

    def word(self, piece):
        ids = self.cache.get(piece)
        if ids is not None:
            return ids
        symbols = [self.alphabet[b] for b in piece.encode("utf-8")]
        while len(symbols) > 1:
            best, best_rank = None, None
            for i in range(len(symbols) - 1):
                r = self.ranks.get((symbols[i], symbols[i + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = i, r
            if best is None:
                break
            symbols[best:best + 2] = [symbols[best] + symbols[best + 1]]
        ids = [self.vocab[s] for s in symbols]
        self.cache[piece] = ids
        return ids

    def encode(self, text):
        out = []
        for m in _SPLIT.finditer(text):
            out.extend(self.word(m.group()))
        return out


def rope_tables(seq):
    inv_freq = 1.0 / (ROPE_THETA ** (torch.arange(0, HEAD_DIM, 2, dtype=torch.float32) / HEAD_DIM))
    angles = torch.outer(torch.arange(seq, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


class RMSNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(HIDDEN))

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS))


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(HIDDEN, HEADS * HEAD_DIM, bias=False)
        self.k_proj = nn.Linear(HIDDEN, KV_HEADS * HEAD_DIM, bias=False)
        self.v_proj = nn.Linear(HIDDEN, KV_HEADS * HEAD_DIM, bias=False)
        self.o_proj = nn.Linear(HEADS * HEAD_DIM, HIDDEN, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, HEADS, HEAD_DIM).transpose(1, 2)
        k = self.k_proj(x).view(b, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
        v = self.v_proj(x).view(b, t, KV_HEADS, HEAD_DIM).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(HEADS // KV_HEADS, dim=1)
        v = v.repeat_interleave(HEADS // KV_HEADS, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(HEAD_DIM) + mask
        out = torch.softmax(scores, dim=-1) @ v
        return self.o_proj(out.transpose(1, 2).reshape(b, t, HEADS * HEAD_DIM))


class Expert(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = nn.Linear(HIDDEN, INTERMEDIATE, bias=False)
        self.w2 = nn.Linear(INTERMEDIATE, HIDDEN, bias=False)
        self.w3 = nn.Linear(HIDDEN, INTERMEDIATE, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class SparseMoe(nn.Module):
    """Mixtral's block: softmax over all experts, top-k, the chosen weights renormalized to sum to one."""

    def __init__(self):
        super().__init__()
        self.gate = nn.Linear(HIDDEN, EXPERTS, bias=False)
        self.experts = nn.ModuleList(Expert() for _ in range(EXPERTS))

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, HIDDEN)
        probs = torch.softmax(self.gate(x), dim=-1)
        weights, chosen = torch.topk(probs, TOP_K, dim=-1)
        weights = weights / weights.sum(-1, keepdim=True)
        out = torch.zeros_like(x)
        for e in range(EXPERTS):
            rows, slot = torch.nonzero(chosen == e, as_tuple=True)
            if rows.numel() == 0:
                continue
            out.index_add_(0, rows, self.experts[e](x[rows]) * weights[rows, slot].unsqueeze(-1))
        # Switch-Transformer load balancing, as transformers' load_balancing_loss_func computes it for Mixtral.
        dispatched = F.one_hot(chosen, EXPERTS).float().mean(dim=(0, 1))
        aux = EXPERTS * (dispatched * probs.mean(0)).sum()
        return out.reshape(shape), aux


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layernorm = RMSNorm()
        self.self_attn = Attention()
        self.post_attention_layernorm = RMSNorm()
        self.block_sparse_moe = SparseMoe()

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        moe, aux = self.block_sparse_moe(self.post_attention_layernorm(x))
        return x + moe, aux


class Mixtral(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, HIDDEN)
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.norm = RMSNorm()
        self.lm_head = nn.Linear(HIDDEN, VOCAB, bias=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)
        # Residual projections start small, as GPT-2 scales them, so that depth does not blow the stream up.
        for layer in self.layers:
            nn.init.normal_(layer.self_attn.o_proj.weight, std=0.02 / math.sqrt(2 * LAYERS))
            for expert in layer.block_sparse_moe.experts:
                nn.init.normal_(expert.w2.weight, std=0.02 / math.sqrt(2 * LAYERS))

    def forward(self, ids):
        t = ids.shape[1]
        cos, sin = rope_tables(t)
        mask = torch.full((t, t), float("-inf")).triu(1)
        x = self.embed_tokens(ids)
        aux_total = 0.0
        for layer in self.layers:
            x, aux = layer(x, cos, sin, mask)
            aux_total = aux_total + aux
        return self.lm_head(self.norm(x)), aux_total / LAYERS

    def hf_state(self):
        """Tensors under transformers' MixtralForCausalLM names."""
        out = {}
        for name, p in self.state_dict().items():
            out[name if name.startswith("lm_head") else "model." + name] = p.detach().float().contiguous()
        return out


def write_safetensors(path, tensors):
    header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name in sorted(tensors):
        data = tensors[name].numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)


def write_configs(out, special):
    config = {
        "architectures": ["MixtralForCausalLM"],
        "model_type": "mixtral",
        "hidden_act": "silu",
        "torch_dtype": "float32",
        "initializer_range": 0.02,
        "tie_word_embeddings": False,
        "bos_token_id": special["<|im_start|>"],
        "eos_token_id": special["<|im_end|>"],
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "head_dim": HEAD_DIM,
        "max_position_embeddings": MAX_POSITIONS,
        "intermediate_size": INTERMEDIATE,
        "num_local_experts": EXPERTS,
        "num_experts_per_tok": TOP_K,
        "rms_norm_eps": EPS,
        "rope_theta": ROPE_THETA,
        "sliding_window": None,
        "router_jitter_noise": 0.0,
        "router_aux_loss_coef": ROUTER_AUX_LOSS_COEF,
        "output_router_logits": False,
        "attention_dropout": 0.0,
        "use_cache": True,
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    generation = {"bos_token_id": special["<|im_start|>"],
                  "eos_token_id": [special["<|im_end|>"], special["<|endoftext|>"]], "do_sample": False}
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump(generation, f, indent=2)
        f.write("\n")


def train_tokenizer(work, text, out):
    cut = text.rfind("\n\n", 0, TOKENIZER_TEXT_BYTES)
    path = os.path.join(work, "tokenizer-text.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text[:cut + 1])
    subprocess.run([os.path.join(ROOT, "bin", "moe"), "train-tokenizer", "--text", path, "--vocab", str(VOCAB),
                    "--out", out], check=True)


@torch.no_grad()
def check_reference(model, out, prompt):
    """The written checkpoint, read by tools/reference's numpy float64 model, gives torch's logits: the checkpoint is
    exactly a MixtralForCausalLM, names, layouts and all (transformers itself is not installed here)."""
    model.eval()
    expected = model(torch.tensor([prompt]))[0][0, -1].double().numpy()
    model.train()
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "reference", "moe_reference.py"), out,
                             "--prompt-ids", ",".join(map(str, prompt)), "--max-new-tokens", "1", "--strict"],
                            check=True, capture_output=True, text=True)
    actual = np.array(json.loads(result.stdout)["last_prompt_logits"])
    diff = float(np.abs(actual - expected).max())
    print(f"numpy reference: last-position logits of a {len(prompt)}-token prompt within {diff:.2e} of torch's", flush=True)
    if diff > 1e-3:
        raise SystemExit(f"the checkpoint does not compute what the trained model computes (max |d| {diff})")


def lr_at(step, steps, peak, warmup):
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup))))


@torch.no_grad()
def evaluate(model, ids, seq):
    model.eval()
    nll, count = 0.0, 0
    for start in range(0, len(ids) - 1, seq):
        window = ids[start:start + seq + 1]
        if len(window) < 2:
            break
        x = torch.from_numpy(window[:-1].astype(np.int64)).unsqueeze(0)
        y = torch.from_numpy(window[1:].astype(np.int64))
        logits, _ = model(x)
        nll += F.cross_entropy(logits[0], y, reduction="sum").item()
        count += len(y)
    model.train()
    return math.exp(nll / count), count


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "checkpoint"), help="checkpoint directory (default: ./checkpoint)")
    ap.add_argument("--heldout", default=os.path.join(HERE, "heldout.txt"), help="where the held-out text is written")
    ap.add_argument("--work", default="/tmp/eval-model-work", help="scratch directory (tokenizer text, file lists, summary.json)")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()

    train_text, held_text, train_files, held_files = corpus.split()
    with open(args.heldout, "w", encoding="utf-8") as f:
        f.write(held_text)
    with open(os.path.join(args.work, "files.json"), "w") as f:
        json.dump({"train": train_files, "heldout": held_files}, f, indent=1)
    print(f"text: {len(train_text)} bytes train ({len(train_files)} files), {len(held_text)} held out "
          f"({len(held_files)} files)", flush=True)

    train_tokenizer(args.work, train_text, args.out)
    with open(os.path.join(args.out, "tokenizer.json"), encoding="utf-8") as f:
        special = {t["content"]: t["id"] for t in json.load(f)["added_tokens"]}
    encoder = Encoder(os.path.join(args.out, "tokenizer.json"))
    train_ids = np.array(encoder.encode(train_text), dtype=np.int32)
    held_ids = np.array(encoder.encode(held_text), dtype=np.int32)
    print(f"tokens: {len(train_ids)} train, {len(held_ids)} held out ({time.time() - t0:.0f} s)", flush=True)

    model = Mixtral()
    params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {params}", flush=True)
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    rng = np.random.default_rng(args.seed)
    span = args.seq + 1
    train_start = time.time()
    for step in range(args.steps):
        starts = rng.integers(0, len(train_ids) - span, size=args.batch)
        batch = torch.from_numpy(np.stack([train_ids[s:s + span] for s in starts]).astype(np.int64))
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, warmup=20)
        logits, aux = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        (loss + ROUTER_AUX_LOSS_COEF * aux).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 10 == 0 or step == args.steps - 1:
            elapsed = time.time() - train_start
            print(f"step {step}: loss {loss.item():.3f} aux {aux.item():.3f} "
                  f"({(step + 1) * args.batch * args.seq / elapsed:.0f} tokens/s, {elapsed:.0f} s)", flush=True)
    train_seconds = time.time() - train_start

    ppl, count = evaluate(model, held_ids, args.seq)
    counts = np.bincount(held_ids, minlength=VOCAB).astype(np.float64)
    p = counts[held_ids[1:]] / counts.sum()
    unigram = math.exp(-np.log(p).mean())
    print(f"held-out perplexity {ppl:.2f} over {count} tokens (windows of {args.seq}); unigram {unigram:.2f}", flush=True)
    write_safetensors(os.path.join(args.out, "model.safetensors"), model.hf_state())
    write_configs(args.out, special)
    check_reference(model, args.out, [int(t) for t in held_ids[:32]])
    summary = {"parameters": params, "train_tokens": int(len(train_ids)), "heldout_tokens": int(len(held_ids)),
               "steps": args.steps, "batch": args.batch, "seq": args.seq, "train_seconds": round(train_seconds),
               "total_seconds": round(time.time() - t0), "heldout_perplexity": round(ppl, 3),
               "heldout_unigram_perplexity": round(unigram, 3), "torch": torch.__version__}
    with open(os.path.join(args.work, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
