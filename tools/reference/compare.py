#!/usr/bin/env python3
"""Compare two moe-serve.generation.v2 JSON files (reference vs Java, reference vs HF, ...).

    python3 compare.py A.json B.json [--atol 1e-4] [--weights-atol X]

Checks (one summary line each; exit 0 only if all pass, 1 if any fails, 2 on unusable input):
  header     same format, architecture and prompt_token_ids
  logits     max |A - B| over last_prompt_logits <= atol (prints the max and where)
  generated  generated_token_ids identical (prints the first divergence)
  experts    gate experts identical per layer and prompt position as ORDERED lists
             (reports separately how many positions differ only in order)
  weights    gate weights within atol, matched by expert id where the expert sets agree
"""

from __future__ import annotations

import argparse
import json
import math
import sys

FORMAT = "moe-serve.generation.v2"


def load(path):
    with open(path) as f:
        return json.load(f)


def compare(a, b, atol=1e-4, weights_atol=None, out=print):
    """Returns (all_ok, list of (check, ok, message))."""
    if weights_atol is None:
        weights_atol = atol
    results = []

    def report(name, ok, msg):
        results.append((name, ok, msg))
        out(f"{'PASS' if ok else 'FAIL'} {name:9s} {msg}")

    # header ---------------------------------------------------------------------------
    problems = []
    for side, r in (("A", a), ("B", b)):
        if r.get("format") != FORMAT:
            problems.append(f"{side}.format={r.get('format')!r}")
    if a.get("architecture") != b.get("architecture"):
        problems.append(f"architecture {a.get('architecture')!r} vs {b.get('architecture')!r}")
    if a.get("prompt_token_ids") != b.get("prompt_token_ids"):
        problems.append("prompt_token_ids differ")
    report("header", not problems, "; ".join(problems) if problems else
           f"{a.get('architecture')}, prompt of {len(a.get('prompt_token_ids') or [])} tokens")

    # logits ---------------------------------------------------------------------------
    la, lb = a.get("last_prompt_logits") or [], b.get("last_prompt_logits") or []
    if len(la) != len(lb) or not la:
        report("logits", False, f"length {len(la)} vs {len(lb)}")
    else:
        worst, where, bad = 0.0, -1, False
        for i, (x, y) in enumerate(zip(la, lb)):
            if not (math.isfinite(x) and math.isfinite(y)):
                bad = True
                where = i
                break
            d = abs(x - y)
            if d > worst:
                worst, where = d, i
        if bad:
            report("logits", False, f"non-finite value at index {where}")
        else:
            ok = worst <= atol
            arg_a = max(range(len(la)), key=lambda i: (la[i], -i))
            arg_b = max(range(len(lb)), key=lambda i: (lb[i], -i))
            report("logits", ok, f"max |d| = {worst:.3e} at index {where} (atol {atol:g}); "
                                 f"argmax {arg_a} vs {arg_b}")

    # generated ------------------------------------------------------------------------
    ga, gb = a.get("generated_token_ids") or [], b.get("generated_token_ids") or []
    if ga == gb:
        report("generated", True, f"{len(ga)} tokens identical")
    else:
        n = min(len(ga), len(gb))
        first = next((i for i in range(n) if ga[i] != gb[i]), n)
        if first < n:
            msg = f"first divergence at step {first}: {ga[first]} vs {gb[first]}"
        else:
            msg = f"identical for {n} tokens, then lengths differ ({len(ga)} vs {len(gb)})"
        report("generated", False, msg + f"; A={ga} B={gb}")

    # gate -----------------------------------------------------------------------------
    ra, rb = a.get("gate") or [], b.get("gate") or []
    layers_a = [r.get("layer") for r in ra]
    layers_b = [r.get("layer") for r in rb]
    if layers_a != layers_b:
        report("experts", False, f"MoE layers differ: {layers_a} vs {layers_b}")
        report("weights", False, "not compared (layers differ)")
    else:
        n_pos = n_mismatch = n_order_only = 0
        first_msg = None
        w_worst, w_where, w_compared, w_skipped = 0.0, None, 0, 0
        shape_problem = None
        for ea, eb in zip(ra, rb):
            layer = ea["layer"]
            xa, xb = ea.get("experts") or [], eb.get("experts") or []
            wa, wb = ea.get("weights") or [], eb.get("weights") or []
            if len(xa) != len(xb) or len(wa) != len(xa) or len(wb) != len(xb):
                shape_problem = (f"layer {layer}: positions A={len(xa)}/{len(wa)} B={len(xb)}/{len(wb)}")
                break
            for pos, (ia, ib) in enumerate(zip(xa, xb)):
                n_pos += 1
                if len(ia) != len(wa[pos]) or len(ib) != len(wb[pos]):
                    shape_problem = f"layer {layer} pos {pos}: experts/weights length mismatch"
                    break
                if ia != ib:
                    n_mismatch += 1
                    order_only = sorted(ia) == sorted(ib)
                    if order_only:
                        n_order_only += 1
                    if first_msg is None:
                        first_msg = (f"first at layer {layer} position {pos}: {ia} vs {ib}"
                                     f"{' (order only)' if order_only else ''}")
                if sorted(ia) == sorted(ib) and len(set(ia)) == len(ia):
                    da = dict(zip(ia, wa[pos]))
                    for e, wv in zip(ib, wb[pos]):
                        d = abs(da[e] - wv)
                        w_compared += 1
                        if not math.isfinite(d) or d > w_worst:
                            w_worst, w_where = (d if math.isfinite(d) else float("inf")), (layer, pos, e)
                else:
                    w_skipped += 1
            if shape_problem:
                break
        if shape_problem:
            report("experts", False, shape_problem)
            report("weights", False, "not compared (shape problem)")
        else:
            if n_mismatch == 0:
                report("experts", True, f"{len(ra)} MoE layers x positions = {n_pos} choices identical")
            else:
                report("experts", False, f"{n_mismatch}/{n_pos} positions differ, {n_order_only} of them only "
                                         f"in order; {first_msg}")
            ok = w_worst <= weights_atol and w_skipped == 0
            msg = f"max |d| = {w_worst:.3e}" + (f" at layer/pos/expert {w_where}" if w_where else "") + \
                  f" over {w_compared} weights (atol {weights_atol:g})"
            if w_skipped:
                msg += f"; {w_skipped} positions not compared (different expert sets)"
            report("weights", ok, msg)

    return all(ok for _, ok, _ in results), results


def main(argv=None):
    ap = argparse.ArgumentParser(description="compare two moe-serve.generation.v2 JSON files")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--atol", type=float, default=1e-4, help="tolerance for logits and gate weights")
    ap.add_argument("--weights-atol", type=float, default=None, help="separate tolerance for gate weights")
    args = ap.parse_args(argv)
    a, b = load(args.a), load(args.b)
    for side, r in (("A", a), ("B", b)):
        if "skipped" in r:
            print(f"SKIP {side} ({r.get('architecture')}): {r['skipped']}")
            return 2
    ok, _ = compare(a, b, args.atol, args.weights_atol)
    print("ALL PASS" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
