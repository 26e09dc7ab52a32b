#!/usr/bin/env python3
"""Writes two routing-statistics snapshots (moe-serve.routing-stats.v1) ten minutes apart for a 24-layer, 64-expert
model (layer 0 dense), with Zipf-skewed, slightly drifting expert load: the inputs of the planner's README example.
Deterministic: python3 make-stats.py [OUT_DIR]."""
import json, math, random, sys

out = sys.argv[1] if len(sys.argv) > 1 else "."
rnd = random.Random(20261202)
layers, experts, top_k, tokens_per_s = 24, 64, 6, 5000
moe = list(range(1, layers))
ranks = {l: rnd.sample(range(experts), experts) for l in moe}
drift = {l: [rnd.gauss(0, 1) for _ in range(experts)] for l in moe}

def shares(l, t):
    w = [1.0 / (ranks[l][e] + 1) ** 0.9 * math.exp(0.7 * drift[l][e] + 0.05 * t * math.sin(e + l)) for e in range(experts)]
    s = sum(w)
    return [x / s for x in w]

counts = {l: [0] * experts for l in moe}
since = 1796169600000
for i, minutes in enumerate((10, 20)):
    seconds = 600
    for l in moe:
        for e, p in enumerate(shares(l, minutes)):
            counts[l][e] += int(round(tokens_per_s * seconds * top_k * p))
    doc = {"schema": "moe-serve.routing-stats.v1", "model": "example-moe-64x", "routing_table_version": 1,
           "num_layers": layers, "num_experts": experts, "moe_layers": moe, "since_unix_millis": since,
           "at_unix_millis": since + minutes * 60000, "total_tokens": tokens_per_s * minutes * 60,
           "tokens": [counts[l][:] if l in counts else [] for l in range(layers)]}
    with open(f"{out}/routing-stats-{i + 1}.json", "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
