#!/usr/bin/env bash
# The same model in two (or more) weight formats, side by side: interleaved rounds of batch-1 and batch-4 decode and a
# 512-token prefill, each checkpoint read back from disk first (as root: the page cache dropped, then the files read)
# so that every one is mapped in 2 MiB pages (BENCHMARKS.md, "Huge pages"). Compare within a round only: these VMs
# drift by tens of percent from one minute to the next.
# Usage: scripts/bench-formats.sh ROUNDS CHECKPOINT_DIR... (e.g. 3 models/gptoss-bench-mxfp4 models/gptoss-bench-bf16)
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 ROUNDS CHECKPOINT_DIR..." >&2
  exit 2
fi
rounds=$1; shift
moe="$(dirname "$0")/../bin/moe"
for r in $(seq 1 "$rounds"); do
  for m in "$@"; do
    if [ "$(id -u)" = 0 ]; then sync; echo 1 > /proc/sys/vm/drop_caches; fi
    cat "$m"/*.safetensors > /dev/null
    echo "== round $r $m $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
    "$moe" bench "$m" --batch 1,4 --prompt-tokens 512 --decode-tokens 64 --repeats 1 --threads "$(nproc)" \
      | grep -E "bandwidth|prefill|decode|2 MiB|peak"
  done
done
