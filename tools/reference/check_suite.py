#!/usr/bin/env python3
"""Run the numpy reference over a suite written by `make_tiny_checkpoint.py --suite ROOT` and
compare it with transformers (--hf, needs torch) and/or another implementation (--cmd).

    python3 check_suite.py ROOT [--hf] [--cmd TEMPLATE] [--out DIR] [--atol 1e-4] [--only NAME ...]

TEMPLATE is a shell command printing moe-serve.generation.v2 JSON on stdout, with the
placeholders {dir} {ids} {n} {ignore_eos} (the last expands to "--ignore-eos" or ""), e.g.
    --cmd 'java -jar moe-serve-cli.jar generate {dir} --prompt-ids {ids} --max-new-tokens {n} {ignore_eos}'
Exit status 0 only if every comparison passes (skipped MoE++ HF entries do not count as failures).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import compare  # noqa: E402
import moe_reference  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root")
    ap.add_argument("--hf", action="store_true", help="also run hf_reference.py (torch + transformers)")
    ap.add_argument("--cmd", help="external command template producing the JSON")
    ap.add_argument("--out", help="folder for the JSON files (default ROOT/results)")
    ap.add_argument("--atol", type=float, default=1e-4)
    ap.add_argument("--only", nargs="*")
    a = ap.parse_args(argv)
    with open(os.path.join(a.root, "suite.json")) as f:
        entries = json.load(f)["entries"]
    out = a.out or os.path.join(a.root, "results")
    os.makedirs(out, exist_ok=True)
    failures, rows = 0, []
    for e in entries:
        if a.only and e["name"] not in a.only:
            continue
        d = os.path.join(a.root, e["dir"])
        r = moe_reference.run(d, e["prompt_ids"], e["max_new_tokens"], e["ignore_eos"], strict=True)
        with open(os.path.join(out, e["name"] + ".ref.json"), "w") as f:
            json.dump(r, f)
        others = []
        if a.hf:
            if not e.get("hf_checkable", True):
                rows.append((e["name"], "hf", "SKIP (not in transformers)"))
            else:
                import hf_reference
                try:
                    h, rc = hf_reference.run(d, e["prompt_ids"], e["max_new_tokens"], e["ignore_eos"])
                except hf_reference.HFCheckError as ex:
                    rows.append((e["name"], "hf", f"ERROR {ex}"))
                    failures += 1
                    h = None
                if h is not None:
                    others.append(("hf", h))
        if a.cmd:
            cmd = a.cmd.format(dir=shlex.quote(d), ids=",".join(map(str, e["prompt_ids"])), n=e["max_new_tokens"],
                               ignore_eos="--ignore-eos" if e["ignore_eos"] else "")
            p = subprocess.run(cmd, shell=True, capture_output=True, text=True)
            if p.returncode != 0:
                rows.append((e["name"], "cmd", f"ERROR rc={p.returncode}: {p.stderr.strip()[-300:]}"))
                failures += 1
            else:
                others.append(("cmd", json.loads(p.stdout)))
        for tag, o in others:
            with open(os.path.join(out, f"{e['name']}.{tag}.json"), "w") as f:
                json.dump(o, f)
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                ok, results = compare.compare(r, o, a.atol)
            failed = [f"{name}: {msg}" for name, good, msg in results if not good]
            rows.append((e["name"], tag, "PASS" if ok else "FAIL " + " | ".join(failed)))
            failures += 0 if ok else 1
        if not others and not a.hf and not a.cmd:
            rows.append((e["name"], "ref", f"ok, generated {r['generated_token_ids']}"))
    for name, tag, msg in rows:
        print(f"{name:40s} {tag:4s} {msg}")
    print(f"{failures} failure(s)")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
