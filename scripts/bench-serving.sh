#!/usr/bin/env bash
# Serving benchmark: decode tokens/s and per-token latency at 1, 4 and 16 concurrent streams, all-in-one (experts in
# the router) against router + two expert pods on loopback, and wire bytes per token per MoE layer. Every setup runs
# at once and the measured runs alternate between them, ROUNDS times. Prints Markdown tables for BENCHMARKS.md.
# Usage: scripts/bench-serving.sh [MODEL_DIR [TOKENS [STREAMS [POD_THREADS [ROUNDS [PLACEMENTS [DELAYS]]]]]]]
#   MODEL_DIR   default models/bench, generated on first use (the ~1.2 B-parameter Mixtral-shaped benchmark model)
#   POD_THREADS kernel threads per expert pod; 0 (default) for half the cores
#   PLACEMENTS  comma-separated two-pod placements LOW/HIGH, default the halves (0-3/4-7 for 8 experts), each
#               optionally with settings: 0-3/4-7@moe.router.experts.transport-threads=2; moe.expert.* go to the
#               pods, model=DIR serves another checkpoint in that setup (0-2/3-5@model=/tmp/merged-6), and
#               moe.bench.app=DIR runs that setup's router from another build's quarkus-app directory (copy one aside
#               to compare two builds in the same rounds); empty for the default
#   DELAYS      comma-separated one-way delays in µs between the router and its pods, each through a TCP relay
#               (system-tests DelayRelay), "D+J" for up to J µs of jitter, "direct" for no relay; also from the
#               environment, e.g. DELAYS=0,100,250; default direct. Every placement runs at every delay, and a model of
#               tokens/s fitted on each placement's first delay predicts the others (BENCHMARKS.md).
set -euo pipefail
exec "$(dirname "$0")/system-tests-main.sh" ServingBenchmark "${1:-models/bench}" "${2:-48}" "${3:-1,4,16}" "${4:-0}" "${5:-3}" "${6:-}" "${7:-${DELAYS:-direct}}"
