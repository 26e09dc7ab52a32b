#!/usr/bin/env bash
# What each of issue 12's efficiency techniques saves in tokens/s on the benchmark model (BENCHMARKS.md, "What each
# technique saves in tokens/s (issue 12)"). Builds the variants into WORK_DIR (kept and reused when run again), then:
#   - pairs per token: moe eval over the first EVAL_TOKENS tokens of TEXT, off and with skipping, and on the merged
#     and combined variants (a token's two choices of one merged expert are one call);
#   - local: moe bench at batch 1 and 16, every variant once per round, rounds interleaved (the order reverses every
#     other round), each round's tokens/s printed with its ratio to "off" of the same round;
#   - router + 2 pods: scripts/bench-serving.sh's ServingBenchmark at 1 and 16 streams, in three runs (same model,
#     pruned/merged, quantized) so that at most five deployments run at once; each run has its own "off" setup, and
#     every round's tokens/s is printed with its ratio to that run's "off" of the same round.
# Usage: scripts/bench-techniques.sh [MODEL_DIR [ROUNDS [DECODE_TOKENS [SERVING_TOKENS [WORK_DIR]]]]]
#   defaults: models/bench, 2 rounds, 16 decode steps per moe bench run, 16 tokens per serving stream, a new temp dir
#   MOE_TECH_TEXT (default tools/eval-model/heldout.txt), MOE_TECH_EVAL_TOKENS (1024): the text the routing
#   statistics (pruning, merging, mixed precision) and the pair counts are measured on
#   MOE_TECH_PARTS (default "eval local serving"): which parts to run; MOE_TECH_ALIGN=1 merges with aligned neurons
#   (an exact assignment per joined expert, slow at width 2816; speed does not depend on it)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-models/bench}"
ROUNDS="${2:-2}"
DECODE="${3:-16}"
SERVE_TOKENS="${4:-16}"
WORK="${5:-$(mktemp -d /tmp/bench-techniques.XXXXXX)}"
TEXT="${MOE_TECH_TEXT:-tools/eval-model/heldout.txt}"
EVAL_TOKENS="${MOE_TECH_EVAL_TOKENS:-1024}"
PARTS="${MOE_TECH_PARTS:-eval local serving}"
mkdir -p "$WORK"
echo "model $MODEL, $ROUNDS rounds, work dir $WORK, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# Bytes of every routed expert (gate, up, down at the checkpoint's dtype), for the offload budgets: half of all of
# them locally, half of a pod's (each pod hosts half the experts) in the pods.
read -r EXPERT_BYTES EXPERTS < <(python3 - "$MODEL/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
size = {"bfloat16": 2, "float16": 2, "float32": 4}[c.get("torch_dtype", "bfloat16")]
n = c["num_local_experts"]
print(3 * c["hidden_size"] * c["intermediate_size"] * size * n * c["num_hidden_layers"], n)
EOF
)
LOCAL_BUDGET=$((EXPERT_BYTES / 2))
POD_BUDGET=$((EXPERT_BYTES / 4))
HALF=$((EXPERTS / 2))
KEPT=$((EXPERTS * 3 / 4))

# Routing statistics for the importance-based techniques, then the variants.
if [ ! -f "$WORK/stats.json" ]; then
  bin/moe eval "$MODEL" --text "$TEXT" --max-tokens "$EVAL_TOKENS" --routing-stats "$WORK/stats.json" --json > "$WORK/eval-off.json"
fi
[ -f "$WORK/prune/config.json" ] || bin/moe prune "$MODEL" --out "$WORK/prune" --keep-fraction 0.75 --stats "$WORK/stats.json" > /dev/null
if [ ! -f "$WORK/merge/config.json" ]; then
  align=--no-align
  [ "${MOE_TECH_ALIGN:-0}" = 1 ] && align=--align
  bin/moe merge "$MODEL" --out "$WORK/merge" --experts-per-layer "$KEPT" --stats "$WORK/stats.json" $align > /dev/null
fi
[ -f "$WORK/mixed3/config.json" ] || bin/moe quantize "$MODEL" --out "$WORK/mixed3" --experts mixed --average-bits 3 --stats "$WORK/stats.json" > /dev/null
[ -f "$WORK/int4/config.json" ] || bin/moe quantize "$MODEL" --out "$WORK/int4" --experts int4 > /dev/null
echo
echo "| variant | checkpoint bytes |"
echo "| --- | --- |"
for v in "$MODEL" "$WORK/prune" "$WORK/merge" "$WORK/mixed3" "$WORK/int4"; do
  echo "| $v | $(cat "$v"/*.safetensors | wc -c) |"
done

pairs() { # NAME FILE: expert pairs computed per token per MoE layer and the share skipped, from moe eval --json
  python3 -c 'import json,sys; r=json.load(open(sys.argv[2])); print("%s: %.4f expert pairs per token per MoE layer, %.2f%% of the choices skipped, perplexity %.3f" % (sys.argv[1], r["expert_pairs_per_token"], 100*r["skipped_pair_share"], r["perplexity"]))' "$1" "$2"
}
if [[ " $PARTS " == *" eval "* ]]; then
  echo
  [ -f "$WORK/eval-off.json" ] && pairs off "$WORK/eval-off.json"
  for b in 0.3 0.5; do
    [ -f "$WORK/eval-skip$b.json" ] || bin/moe eval "$MODEL" --text "$TEXT" --max-tokens "$EVAL_TOKENS" --skip-threshold "$b" --json > "$WORK/eval-skip$b.json"
    pairs "skipping $b" "$WORK/eval-skip$b.json"
  done
  [ -f "$WORK/eval-merge.json" ] || bin/moe eval "$WORK/merge" --text "$TEXT" --max-tokens "$EVAL_TOKENS" --json > "$WORK/eval-merge.json"
  pairs "merge to $KEPT" "$WORK/eval-merge.json"
  [ -f "$WORK/eval-combined.json" ] || bin/moe eval "$WORK/mixed3" --text "$TEXT" --max-tokens "$EVAL_TOKENS" --skip-threshold 0.3 --json > "$WORK/eval-combined.json"
  pairs "mixed <= 3 bits + skipping 0.3" "$WORK/eval-combined.json"
fi

# name|checkpoint|moe bench options
VARIANTS=(
  "off|$MODEL|"
  "skip 0.3|$MODEL|--skip-threshold 0.3"
  "skip 0.5|$MODEL|--skip-threshold 0.5"
  "prune to $KEPT|$WORK/prune|"
  "merge to $KEPT|$WORK/merge|"
  "mixed <= 3 bits|$WORK/mixed3|"
  "int4|$WORK/int4|"
  "offload 50%|$MODEL|--offload-budget $LOCAL_BUDGET"
  "mixed <= 3 + skip 0.3|$WORK/mixed3|--skip-threshold 0.3"
)
if [[ " $PARTS " == *" local "* ]]; then
  echo
  echo "local: moe bench --batch 1,16 --prompt-tokens 16 --decode-tokens $DECODE --repeats 1"
  for round in $(seq 1 "$ROUNDS"); do
    order=("${VARIANTS[@]}")
    if [ $((round % 2)) = 0 ]; then
      order=()
      for ((i = ${#VARIANTS[@]} - 1; i >= 0; i--)); do order+=("${VARIANTS[$i]}"); done
    fi
    declare -A b1=() b16=()
    for v in "${order[@]}"; do
      IFS='|' read -r name dir opts <<< "$v"
      # shellcheck disable=SC2086
      out="$(bin/moe bench "$dir" --batch 1,16 --prompt-tokens 16 --decode-tokens "$DECODE" --repeats 1 $opts)"
      b1[$name]="$(sed -n 's/^decode *batch *1: \([0-9.]*\) tokens.*/\1/p' <<< "$out")"
      b16[$name]="$(sed -n 's/^decode *batch *16: \([0-9.]*\) tokens.*/\1/p' <<< "$out")"
      echo "round $round ($(cut -d' ' -f1 /proc/loadavg)): $name: batch 1 ${b1[$name]} tokens/s, batch 16 ${b16[$name]} tokens/s"
    done
    for v in "${VARIANTS[@]}"; do
      IFS='|' read -r name dir opts <<< "$v"
      python3 -c 'import sys; n,r,a,a0,b,b0=sys.argv[1:]; print("round %s ratio to off: %s: batch 1 %.2f, batch 16 %.2f" % (r, n, float(a)/float(a0), float(b)/float(b0)))' \
        "$name" "$round" "${b1[$name]}" "${b1[off]}" "${b16[$name]}" "${b16[off]}"
    done
    unset b1 b16
  done
fi

if [[ " $PARTS " == *" serving "* ]]; then
  low="0-$((HALF - 1))"
  high="$HALF-$((EXPERTS - 1))"
  mlow="0-$((KEPT / 2 - 1))"
  mhigh="$((KEPT / 2))-$((KEPT - 1))"
  skip=moe.router.expert-skipping.threshold
  # A cold pod's first calls on a loaded machine can take longer than the 2 s default deadline.
  t="moe.router.experts.call-timeout=${MOE_TECH_CALL_TIMEOUT:-30s}"
  RUNS=(
    "$low/$high@$t,$low/$high@$t;$skip=0.3,$low/$high@$t;$skip=0.5,$low/$high@$t;moe.expert.offload-budget-bytes=$POD_BUDGET"
    "$low/$high@$t,$mlow/$mhigh@$t;model=$WORK/prune,$mlow/$mhigh@$t;model=$WORK/merge"
    "$low/$high@$t,$low/$high@$t;model=$WORK/mixed3,$low/$high@$t;model=$WORK/int4,$low/$high@$t;model=$WORK/mixed3;$skip=0.3"
  )
  for i in "${!RUNS[@]}"; do
    echo
    echo "router + 2 pods, run $((i + 1)): ${RUNS[$i]} (load average $(cut -d' ' -f1-3 /proc/loadavg))"
    [ "$i" = 0 ] || export MOE_SKIP_BUILD=1
    scripts/bench-serving.sh "$MODEL" "$SERVE_TOKENS" 1,16 0 "$ROUNDS" "${RUNS[$i]}" direct | tee "$WORK/serving-$((i + 1)).txt"
    # Each distributed setup's tokens/s over the first distributed setup's ("off") of the same round and streams.
    python3 - "$WORK/serving-$((i + 1)).txt" <<'EOF'
import re, sys
rows = {}
order = []
for line in open(sys.argv[1]):
    m = re.match(r"round (\d+): (.*), (\d+) streams: ([\d.]+) tokens/s", line)
    if not m or m.group(2) == "all-in-one":
        continue
    rnd, setup, streams, tps = int(m.group(1)), m.group(2), int(m.group(3)), float(m.group(4))
    if setup not in order:
        order.append(setup)
    rows[(rnd, setup, streams)] = tps
off = order[0]
for (rnd, setup, streams), tps in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][2], order.index(kv[0][1]))):
    print("round %d, %d streams: %s: %.1f tokens/s, %.2f of off" % (rnd, streams, setup, tps, tps / rows[(rnd, off, streams)]))
EOF
  done
fi
echo
echo "done, load average $(cut -d' ' -f1-3 /proc/loadavg)"
