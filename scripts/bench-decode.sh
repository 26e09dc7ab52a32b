#!/usr/bin/env bash
# Our side of the side-by-side comparison with llama.cpp (../shared/bench/README.md), for any checkpoint: batch-1
# decode of 64 tokens and prefill of a 512-token prompt, the settings of llama-bench's tg64 and pp512, ROUNDS times.
# Run llama-bench on the same weights between rounds (peer-bench.sh does both) and compare within a round only:
# these VMs drift by tens of percent from one minute to the next.
# Usage: scripts/bench-decode.sh CHECKPOINT_DIR [THREADS [ROUNDS]]
#   THREADS  kernel threads, default all cores (llama-bench's -t)
#   ROUNDS   default 3
# Each round prints the read bandwidth and the decode ceiling it implies, and how much of the checkpoint is mapped in
# 2 MiB pages: a checkpoint whose files were just written sits in the page cache in 4 KiB pages and decodes ~10%
# slower (BENCHMARKS.md, "Huge pages"), so put both sides in the same state before comparing.
set -euo pipefail
if [ $# -lt 1 ] || [ ! -d "$1" ]; then
  echo "usage: $0 CHECKPOINT_DIR [THREADS [ROUNDS]]" >&2
  exit 2
fi
checkpoint=$1; threads=${2:-$(nproc)}; rounds=${3:-3}
for r in $(seq 1 "$rounds"); do
  echo "== round $r $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
  "$(dirname "$0")/../bin/moe" bench "$checkpoint" --batch 1 --prompt-tokens 512 --decode-tokens 64 --repeats 1 \
    --threads "$threads" | grep -E "bandwidth|prefill|decode|2 MiB"
done
