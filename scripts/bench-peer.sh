#!/usr/bin/env bash
# Side-by-side with llama.cpp (../shared/bench/README.md), several formats in one sitting: for each pair
# OURS_DIR=GGUF_FILE, each round runs our batch-1 decode (64 tokens on an almost empty cache, as llama-bench's tg64)
# and 512-token prefill, then llama-bench's tg64 and pp512 on the GGUF, and prints the two ratios of that round.
# Pairs alternate within a round, so every ratio is of two runs a minute apart; these VMs drift by tens of percent
# from one minute to the next, so never divide figures from different rounds. The medians close the output.
# Usage: LLAMA_BIN=~/llama.cpp/build/bin scripts/bench-peer.sh THREADS ROUNDS OURS_DIR=GGUF[=OPTIONS] ...
#   e.g. scripts/bench-peer.sh 2 3 ~/peermodels/synth-mixtral-hf=~/peermodels/synth-mixtral-f16.gguf \
#          ~/peermodels/synth-mixtral-int8=~/peermodels/synth-mixtral-q8_0.gguf \
#          "~/peermodels/synth-mixtral-int8=~/peermodels/synth-mixtral-q8_0.gguf=--activations int8"
# OPTIONS (a third field) are passed to our `moe bench` as they are, so one checkpoint can run in two modes.
# Put both sides' files in the same page-cache state first (2 MiB pages: BENCHMARKS.md, "Huge pages").
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: LLAMA_BIN=DIR $0 THREADS ROUNDS OURS_DIR=GGUF[=OPTIONS] ..." >&2
  exit 2
fi
: "${LLAMA_BIN:?set LLAMA_BIN to the build/bin folder of llama.cpp}"
threads=$1; rounds=$2; shift 2
moe="${MOE:-$(dirname "$0")/../bin/moe}"
results=$(mktemp)
# A pair's name in the output: its checkpoint's folder, and its options without spaces.
label() {
  local ours=${1%%=*} rest=${1#*=}
  local options=""
  [ "$rest" != "${rest%%=*}" ] && options=${rest#*=}
  printf '%s%s' "$(basename "$ours")" "${options:+[${options// /_}]}"
}
trap 'rm -f "$results"' EXIT
for r in $(seq 1 "$rounds"); do
  echo "== round $r $(date +%T) load $(cut -d' ' -f1 /proc/loadavg)"
  for pair in "$@"; do
    ours=${pair%%=*}; rest=${pair#*=}; gguf=${rest%%=*}; options=""
    [ "$rest" != "$gguf" ] && options=${rest#*=}
    # shellcheck disable=SC2086 # OPTIONS are words on purpose
    out=$("$moe" bench "$ours" --batch 1 --prompt-tokens 512 --decode-tokens 64 --repeats 1 --threads "$threads" $options)
    od=$(sed -n 's/^decode   batch  1: \([0-9.]*\) tokens\/s.*/\1/p' <<<"$out")
    op=$(sed -n 's/^prefill  512-token prompt: \([0-9.]*\) tokens\/s.*/\1/p' <<<"$out")
    bw=$(sed -n 's/^read bandwidth \([0-9.]*\) GB\/s.*/\1/p' <<<"$out")
    peer=$("$LLAMA_BIN/llama-bench" -m "$gguf" -t "$threads" -p 512 -n 64 -r 1 -o csv 2>/dev/null)
    # llama-bench's csv: the last field is stddev_ts, the one before it avg_ts; n_prompt/n_gen tell the tests apart.
    ld=$(awk -F, 'NR > 1 && $0 ~ /"0","64"/ {gsub(/"/, "", $(NF-1)); print $(NF-1)}' <<<"$peer")
    lp=$(awk -F, 'NR > 1 && $0 ~ /"512","0"/ {gsub(/"/, "", $(NF-1)); print $(NF-1)}' <<<"$peer")
    rd=$(awk -v a="$od" -v b="$ld" 'BEGIN {printf "%.2f", a / b}')
    rp=$(awk -v a="$op" -v b="$lp" 'BEGIN {printf "%.2f", a / b}')
    printf '%-40s bandwidth %5s GB/s | decode ours %6s llama %6.2f ratio %s | prefill ours %6s llama %6.2f ratio %s\n' \
      "$(label "$pair") vs $(basename "$gguf")" "$bw" "$od" "$ld" "$rd" "$op" "$lp" "$rp"
    echo "$(label "$pair") $rd $rp" >> "$results"
  done
done
echo "== medians of the per-round ratios"
for pair in "$@"; do
  name=$(label "$pair")
  d=$(awk -v n="$name" '$1 == n {print $2}' "$results" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')
  p=$(awk -v n="$name" '$1 == n {print $3}' "$results" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}')
  echo "$name: decode $d, prefill $p"
done
